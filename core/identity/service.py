"""Identity rule sets (HQ default, tenant overlay) and the merge history of a profile."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from core.audit.service import record, record_hq
from core.db import Database
from core.identity.rules import (
    HQ_DEFAULT_RULES,
    IdentityOverlay,
    IdentityRules,
    check_overlay_governance,
    check_rules,
    effective_rules,
)
from core.model.service import ensure_settings_row, load_data_config
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import HqContext, TenantContext


class IdentityRulesView(msgspec.Struct):
    hq: IdentityRules
    overlay: IdentityOverlay
    effective: IdentityRules


class Merge(msgspec.Struct):
    id: int
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    reason: dict[str, Any]
    details: dict[str, Any]
    actor: str
    merged_at: datetime


async def get_hq_rules(db: Database) -> IdentityRules:
    async with db.hq_tx() as conn:
        value = await conn.fetchval(
            "select value from hq_data_policies where name = 'identity_rules'")
    return HQ_DEFAULT_RULES if value is None else msgspec.convert(value, IdentityRules)


async def put_hq_rules(db: Database, hq: HqContext, rules: IdentityRules) -> IdentityRules:
    check_rules(rules)
    value = msgspec.to_builtins(rules)
    async with db.hq_tx() as conn:
        await conn.execute(
            """insert into hq_data_policies (name, value) values ('identity_rules', $1)
               on conflict (name) do update set value = excluded.value, updated_at = now()""",
            value)
        await record_hq(conn, hq, "identity_rules.updated", "identity_rules", "hq", value)
    return rules


async def get_tenant_rules(db: Database, ctx: TenantContext) -> IdentityRulesView:
    hq = await get_hq_rules(db)
    async with db.tenant_tx(ctx) as conn:
        config = await load_data_config(conn, ctx)
    return IdentityRulesView(hq=hq, overlay=config.overlay, effective=config.rules)


async def put_tenant_overlay(db: Database, ctx: TenantContext,
                             overlay: IdentityOverlay) -> IdentityRulesView:
    hq = await get_hq_rules(db)
    check_overlay_governance(hq, overlay)
    value = msgspec.to_builtins(overlay)
    async with db.tenant_tx(ctx) as conn:
        await ensure_settings_row(conn, ctx)
        await conn.execute("update tenant_data_settings set identity_overlay = $1, "
                           "updated_at = now()", value)
        await record(conn, ctx, "identity_rules.overlay_updated", "identity_rules", None, value)
    return IdentityRulesView(hq=hq, overlay=overlay, effective=effective_rules(hq, overlay))


async def list_merges(db: Database, ctx: TenantContext, customer_id: uuid.UUID, *,
                      cursor: str | None, limit: int) -> Page[Merge]:
    """Merges that shaped this profile: into it, into any profile merged into it, and the
    merge that folded it into another (newest first)."""
    from core.customers.service import require_customer  # customers build on identity

    check_limit(limit)
    after = decode_cursor(cursor, int)
    async with db.tenant_tx(ctx) as conn:
        await require_customer(conn, customer_id, follow_merges=False)
        rows = await conn.fetch(
            """select id, survivor_id, merged_id, reason, details, actor, merged_at
               from customer_merges
               where (survivor_id = $1 or merged_id = $1
                      or survivor_id in (select id from customers where merged_into = $1))
                 and ($2::bigint is null or id < $2)
               order by id desc limit $3""", customer_id, after, limit + 1)
    return page_of([Merge(**dict(r)) for r in rows], limit, lambda m: m.id)


# -- re-pointing the events of large merges (arq job) ---------------------------------------

REPOINT_BATCH = 5000


async def pending_repoints(db: Database, ctx: TenantContext) -> list[int]:
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            """select id from customer_merges where (details->>'events_pending')::boolean
               order by id""")
    return [r["id"] for r in rows]


async def finish_repoint(db: Database, ctx: TenantContext, merge_id: int) -> int:
    """Move the remaining events of a merged profile in short batches (no long lock on
    events); idempotent, so a re-run after a worker restart just continues."""
    from core.identity.merge import repoint_events

    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            "select survivor_id, merged_id from customer_merges where id = $1", merge_id)
    if row is None:
        return 0
    total = 0
    while True:
        async with db.tenant_tx(ctx) as conn:
            survivor = await conn.fetchval(
                "select coalesce(merged_into, id) from customers where id = $1",
                row["survivor_id"])
            moved = await repoint_events(conn, ctx, survivor, row["merged_id"], REPOINT_BATCH)
            total += moved
            if moved < REPOINT_BATCH:
                await conn.execute(
                    """update customer_merges
                       set details = details || jsonb_build_object('events_pending', false,
                           'events_repointed', coalesce((details->>'events_repointed')::int, 0)
                                               + $2::int)
                       where id = $1""", merge_id, total)
                return total
