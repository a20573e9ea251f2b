"""Bulk writes to the outbox for planners (campaigns, later journeys): enqueueing a batch's
messages set-based, and skipping planned messages (displaced by arbitration, or their
campaign cancelled).

`enqueue_chosen` is the set-based twin of `insert_planned` — same columns, same
deterministic ids (computed in SQL, see `core.campaigns.plan.choose`; a test holds them to
`core.messaging.ids.message_id`), same `on conflict do nothing`, no event row (`planned` is
implied by the row) — for rows already in a temporary table: half a million messages never
travel through Python (building and encoding them there cost more than the whole rest of
a plan).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.db import Connection
from tenants.context import TenantContext


async def enqueue_chosen(conn: Connection, ctx: TenantContext, *, table: str,
                         source_id: str, purpose: str, priority: int,
                         data: dict[str, Any]) -> int:
    """Insert the messages of `table` (message_id, customer_id, channel, send_at, step,
    template_id, category, tags) as `planned`, inside the caller's transaction; returns how
    many were new."""
    return int(await conn.fetchval(f"""
        with new as (
            insert into messages (tenant_id, id, customer_id, channel, category, purpose,
                                  priority, source_type, source_id, step, occurrence,
                                  template_id, scheduled_at, tags, data, status)
            select $1, c.message_id, c.customer_id, c.channel, c.category, $2, $3,
                   'campaign', $4, c.step, '', c.template_id, c.send_at, c.tags, $5::jsonb,
                   'planned'
            from {table} c
            -- in customer order: the customer-keyed indexes then fill neighbouring pages
            -- (measured ~10% faster for a 40k-message batch)
            order by c.customer_id
            on conflict (tenant_id, id) do nothing
            returning 1)
        select count(*) from new""", ctx.tenant_id, purpose, priority, source_id, data))


async def skip_planned(conn: Connection, ctx: TenantContext, ids: Sequence[str],
                       reasons: Sequence[str]) -> list[str]:
    """`planned → skipped` for the given ids (each with its reason), set-based; ids no
    longer planned are left alone. Returns the ids actually skipped."""
    if not ids:
        return []
    rows = await conn.fetch(
        """with u as (select * from unnest($2::text[], $3::text[]) as u(id, reason)),
                done as (update messages m set status = 'skipped', status_reason = u.reason,
                                updated_at = now()
                         from u where m.tenant_id = $1 and m.id = u.id
                           and m.status = 'planned'
                         returning m.id, u.reason),
                events as (insert into message_events (tenant_id, message_id, status, reason)
                           select $1, id, 'skipped', reason from done)
           select id from done""", ctx.tenant_id, list(ids), list(reasons))
    return [r["id"] for r in rows]


async def skip_source(conn: Connection, ctx: TenantContext, source_type: str,
                      source_id: str, reason: str) -> int:
    """Skip every still-planned message of one source (a cancelled campaign)."""
    rows = await conn.fetch(
        """with done as (update messages set status = 'skipped', status_reason = $3,
                                updated_at = now()
                         where source_type = $1 and source_id = $2 and status = 'planned'
                         returning id),
                events as (insert into message_events (tenant_id, message_id, status, reason)
                           select current_setting('relais.tenant_id'), id, 'skipped', $3
                           from done)
           select count(*) as n from done""", source_type, source_id, reason)
    return rows[0]["n"]
