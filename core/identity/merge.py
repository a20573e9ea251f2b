"""The slow path of identity resolution (one record at a time) and profile merges.

Runs under the tenant's exclusive identity lock (see `resolve.lock_exclusive`), so no other
batch reads or writes identifiers while profiles are combined. Merges are deterministic:
the older profile survives (its id is the one other systems are most likely to hold);
identifiers, consents, preferences, subscriptions, notes and events move to it; the merged
profile keeps its row with `merged_into` set, and the merge is recorded with its reason.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from core.audit.service import record
from core.db import Connection
from core.errors import InvalidInput
from core.identity.resolve import (
    DEMOTED_NOTE,
    Key,
    Record,
    lookup,
)
from core.identity.rules import limit_of
from core.identity.survivorship import (
    PROFILE_COLUMNS,
    apply_traits,
    join_profile,
    merge_fields,
    split_profile,
)
from core.model.service import DataConfig
from plugins.types import CustomerMerge
from tenants.context import TenantContext

# Events of a merged-away profile are re-pointed in the merge transaction up to this many;
# beyond, the `repoint_merged_events` job finishes the work in batches (the timeline
# already follows merges, so nothing disappears meanwhile).
REPOINT_INLINE_LIMIT = 10_000
_PROFILE_SELECT = f"""select id, created_at, stage, {", ".join(PROFILE_COLUMNS)}, attributes,
                             field_meta, merged_into, erased_at
                      from customers where tenant_id = $1 and id = any($2::uuid[])
                      order by id for update"""


async def _active_counts(conn: Connection, ctx: TenantContext,
                         customer_id: uuid.UUID) -> dict[str, int]:
    rows = await conn.fetch(
        """select kind, count(*) from identifiers
           where tenant_id = $1 and customer_id = $2 and status = 'active' group by kind""",
        ctx.tenant_id, customer_id)
    return defaultdict(int, {r[0]: r[1] for r in rows})


async def _live_id(conn: Connection, ctx: TenantContext, customer_id: uuid.UUID) -> uuid.UUID:
    merged_into = await conn.fetchval(
        "select merged_into from customers where tenant_id = $1 and id = $2",
        ctx.tenant_id, customer_id)
    return merged_into or customer_id


async def resolve_one(conn: Connection, ctx: TenantContext, config: DataConfig, r: Record,
                      source: str, merges: list[CustomerMerge] | None = None) -> None:
    """Resolve one record, merging the profiles its identifiers link; each merge made is
    appended to `merges` (for the `relais_customers_merged` reaction)."""
    owners = await lookup(conn, ctx, r.ids)
    # Active identifiers decide first (highest priority first); demoted ones only resolve.
    ordered = [k for k in r.ids if k in owners and owners[k][1] == "active"] + \
              [k for k in r.ids if k in owners and owners[k][1] != "active"]
    target = await _live_id(conn, ctx, r.customer_id) if r.customer_id else None
    redirect: dict[uuid.UUID, uuid.UUID] = {}  # profiles merged away during this record
    for key in ordered:
        owner, status = owners[key][0], owners[key][1]
        owner = redirect.get(owner, owner)
        if target is None:
            target = owner
            continue
        if owner == target:
            continue
        if status != "active":
            r.note(f"{key[0]} is demoted on another profile: not merged")
            continue
        ours, theirs = await _active_counts(conn, ctx, target), \
            await _active_counts(conn, ctx, owner)
        over = [k for k in set(ours) | set(theirs)
                if (lim := limit_of(config.rules, k)) is not None and ours[k] + theirs[k] > lim]
        if over:
            r.note(f"profiles not merged through {key[0]}: a profile may hold at most "
                           f"{limit_of(config.rules, over[0])} {over[0]}")
            continue
        reason = {"kind": key[0], "value": key[1], "source": source}
        survivor = await merge_profiles(conn, ctx, config, target, owner, reason)
        if merges is not None:
            merges.append(CustomerMerge(survivor_id=survivor,
                                        merged_id=owner if survivor == target else target,
                                        reason=reason))
        for gone in (target, owner):
            if gone != survivor:
                redirect[gone] = survivor
                redirect.update({k: survivor for k, v in redirect.items() if v == gone})
        target = survivor
    if target is None:
        _check_required(config, r)
        target = uuid.uuid4()
        await conn.execute("insert into customers (tenant_id, id) values ($1, $2)",
                           ctx.tenant_id, target)
        r.created = True
    new_keys = [k for k in r.ids if k not in owners]
    if new_keys:
        await _attach(conn, ctx, config, r, target, new_keys, source)
    await _apply_traits(conn, ctx, config, r, target, source)
    r.resolved = target


def _check_required(config: DataConfig, r: Record) -> None:
    if r.traits is None:  # profiles created by events are anonymous until identified
        return
    values = dict(r.traits) | {kind: value for kind, value in r.ids}
    missing = [n for n, f in config.fields.items() if f.required and values.get(n) is None]
    if missing:
        raise InvalidInput(f"a new profile needs {', '.join(missing)}",
                           field=f"traits.{missing[0]}")


async def _attach(conn: Connection, ctx: TenantContext, config: DataConfig, r: Record,
                  target: uuid.UUID, keys: list[Key], source: str) -> None:
    counts = await _active_counts(conn, ctx, target)
    statuses = []
    for kind, _ in keys:
        lim = limit_of(config.rules, kind)
        if lim is not None and counts[kind] >= lim:
            statuses.append("demoted")
            r.note(DEMOTED_NOTE)
        else:
            counts[kind] += 1
            statuses.append("active")
    await conn.execute(
        """insert into identifiers (tenant_id, kind, value, customer_id, source, status)
           select $1, q.kind, q.value, $2, $3, q.status
           from unnest($4::text[], $5::text[], $6::text[]) as q(kind, value, status)
           on conflict do nothing""",
        ctx.tenant_id, target, source, [k for k, _ in keys], [v for _, v in keys], statuses)


async def _apply_traits(conn: Connection, ctx: TenantContext, config: DataConfig, r: Record,
                        target: uuid.UUID, source: str) -> None:
    traits = dict(r.traits or {})
    for kind, value in r.ids:
        if kind in ("email", "phone") and (r.traits is not None or r.created):
            traits.setdefault(kind, value)
    if not traits:
        return
    row = await conn.fetchrow(_PROFILE_SELECT, ctx.tenant_id, [target])
    values, meta = split_profile(dict(row)), dict(row["field_meta"])
    if apply_traits(values, meta, traits, r.seen_at, source, config.rules):
        await _write_profile(conn, ctx, target, values, meta)


async def _write_profile(conn: Connection, ctx: TenantContext, customer_id: uuid.UUID,
                         values: dict[str, Any], meta: dict[str, Any],
                         set_stage: bool = False, stage: str | None = None) -> None:
    columns, attributes = join_profile(values)
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(PROFILE_COLUMNS, start=3))
    await conn.execute(
        f"""update customers set {sets}, attributes = $11, field_meta = $12,
                stage = case when $13 then $14 else stage end, updated_at = now()
            where tenant_id = $1 and id = $2""",
        ctx.tenant_id, customer_id, *(columns[n] for n in PROFILE_COLUMNS), attributes, meta,
        set_stage, stage)


async def merge_profiles(conn: Connection, ctx: TenantContext, config: DataConfig,
                         a: uuid.UUID, b: uuid.UUID, reason: dict[str, Any]) -> uuid.UUID:
    """Merge two live profiles; returns the survivor (the older one)."""
    rows = {row["id"]: row for row in await conn.fetch(_PROFILE_SELECT, ctx.tenant_id, [a, b])}
    first, second = sorted(rows.values(), key=lambda row: (row["created_at"], row["id"]))
    survivor, merged = first["id"], second["id"]
    values, meta = split_profile(dict(first)), dict(first["field_meta"])
    decisions = merge_fields(values, meta, split_profile(dict(second)),
                             dict(second["field_meta"]), config.rules)
    await _write_profile(conn, ctx, survivor, values, meta,
                         set_stage=True, stage=first["stage"] or second["stage"])
    moved = await _move_dependants(conn, ctx, survivor, merged)
    details = {"fields": decisions, **moved}
    await conn.execute(
        """insert into customer_merges (tenant_id, survivor_id, merged_id, reason, details, actor)
           values ($1, $2, $3, $4, $5, $6)""",
        ctx.tenant_id, survivor, merged, reason, details, ctx.actor.label)
    await record(conn, ctx, "customer.merged", "customer", str(survivor),
                 {"merged_id": str(merged), "reason_kind": reason.get("kind"), **moved})
    return survivor


async def _move_dependants(conn: Connection, ctx: TenantContext, survivor: uuid.UUID,
                           merged: uuid.UUID) -> dict[str, Any]:
    t, s, m = ctx.tenant_id, survivor, merged
    await conn.execute(
        """update customers set merged_into = $2, updated_at = now()
           where tenant_id = $1 and (id = $3 or merged_into = $3)""", t, s, m)
    identifiers = await conn.fetchval(
        """with moved as (update identifiers set customer_id = $2
                          where tenant_id = $1 and customer_id = $3 returning 1)
           select count(*) from moved""", t, s, m)
    # Consents: per channel x purpose the most recent decision wins; history follows.
    await conn.execute(
        """insert into consents (tenant_id, customer_id, channel, purpose, status, legal_basis,
                                 source, proof, updated_at)
           select tenant_id, $2, channel, purpose, status, legal_basis, source, proof, updated_at
           from consents where tenant_id = $1 and customer_id = $3
           on conflict (tenant_id, customer_id, channel, purpose) do update
             set status = excluded.status, legal_basis = excluded.legal_basis,
                 source = excluded.source, proof = excluded.proof,
                 updated_at = excluded.updated_at
             where consents.updated_at < excluded.updated_at""", t, s, m)
    await conn.execute("delete from consents where tenant_id = $1 and customer_id = $2", t, m)
    await conn.execute(
        "update consent_history set customer_id = $2 where tenant_id = $1 and customer_id = $3",
        t, s, m)
    # Preferences and subscriptions: the survivor's own choices stay; the others fill gaps.
    await conn.execute(
        """insert into preferences (tenant_id, customer_id, channels, language, quiet_start,
                                    quiet_end, timezone, updated_at)
           select tenant_id, $2, channels, language, quiet_start, quiet_end, timezone, updated_at
           from preferences where tenant_id = $1 and customer_id = $3
           on conflict do nothing""", t, s, m)
    await conn.execute("delete from preferences where tenant_id = $1 and customer_id = $2", t, m)
    await conn.execute(
        """insert into transit_subscriptions (tenant_id, customer_id, kind, ref, created_at)
           select tenant_id, $2, kind, ref, created_at from transit_subscriptions
           where tenant_id = $1 and customer_id = $3 on conflict do nothing""", t, s, m)
    await conn.execute(
        "delete from transit_subscriptions where tenant_id = $1 and customer_id = $2", t, m)
    await conn.execute(
        "update customer_notes set customer_id = $2 where tenant_id = $1 and customer_id = $3",
        t, s, m)
    events = await repoint_events(conn, ctx, survivor, merged, REPOINT_INLINE_LIMIT)
    return {"identifiers_moved": identifiers, "events_repointed": events,
            "events_pending": events >= REPOINT_INLINE_LIMIT}


async def repoint_events(conn: Connection, ctx: TenantContext, survivor: uuid.UUID,
                         merged: uuid.UUID, limit: int) -> int:
    return await conn.fetchval(
        """with batch as (select id from events where tenant_id = $1 and customer_id = $3
                          limit $4),
                moved as (update events e set customer_id = $2 from batch
                          where e.tenant_id = $1 and e.id = batch.id returning 1)
           select count(*) from moved""", ctx.tenant_id, survivor, merged, limit)
