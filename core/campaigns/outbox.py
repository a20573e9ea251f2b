"""The two writes planning makes to the outbox besides enqueueing: skipping planned
messages (displaced by arbitration, or their campaign cancelled).

Kept apart and small on purpose: it belongs with `core.messaging.service` (the owner of the
`messages` table) and should move there; it follows that module's conventions (status
moves forward only, every change appended to `message_events`).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.db import Connection
from tenants.context import TenantContext


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
