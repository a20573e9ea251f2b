"""Identity resolution for a batch of records, set-based.

A record (an event or an identify call) carries normalised identifiers and, for identify,
traits. The fast path resolves a whole batch in a handful of statements: look up every
identifier at once, group records that share identifiers (union-find), create one profile
per group that matched none, attach new identifiers, apply traits. Groups that would need
a merge, break a per-kind limit or lost an insert race to a concurrent batch are handed to
the slow path (`core.identity.merge.resolve_one`), which runs one record at a time under a
tenant-wide exclusive lock.

Concurrency: every ingestion transaction holds the tenant's identity lock in shared mode
and merges take it exclusively, so a merge never interleaves with a batch that still holds
the merged-away profile id. Inserts are sorted (identifiers by kind/value) so concurrent
batches acquire row locks in the same order and cannot deadlock.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from asyncpg.pgproto.pgproto import UUID as PgUUID

from core.db import Connection
from core.identity.arrays import array_literal
from core.identity.keys import Keys
from core.identity.normalise import hash_identifier
from core.identity.rules import IdentityRules, limit_of, priority_of
from core.identity.survivorship import (
    PROFILE_COLUMNS,
    apply_traits,
    join_profile,
    split_profile,
)
from core.model.service import DataConfig, load_data_config
from tenants.context import TenantContext

LOCK_NAMESPACE = 3  # pg advisory lock class id for identity (first key of the pair)
LAST_SEEN_RESOLUTION = timedelta(hours=1)
# SQL types of PROFILE_COLUMNS, in order.
_COLUMN_TYPES = ("text", "text", "text", "text", "text", "text", "date", "text")
Key = tuple[str, str]

DEMOTED_NOTE = ("an identifier was demoted: the profile already has the maximum number of "
                "identifiers of that kind")
SUPPRESSED_REASON = ("identifier was erased at the person's request (GDPR) and is on the "
                     "suppression list")


class Record(msgspec.Struct, gc=False):
    """One item to resolve. Thousands per batch and never part of a cycle, hence kept out
    of the cyclic garbage collector."""

    index: int
    ids: Sequence[Key]                  # normalised, not blocked, highest priority first
    seen_at: datetime
    customer_id: uuid.UUID | None = None
    traits: dict[str, Any] | None = None  # identify only: validated field -> value
    resolved: uuid.UUID | None = None
    created: bool = False
    slow: bool = False
    error: tuple[str, str] | None = None  # (reason, field)
    notes: list[str] | None = None
    # The event to store once resolved (events; identify calls with a message_id).
    message_id: str | None = None
    event_type: str | None = None
    properties: dict[str, Any] | None = None
    timed: bool = True  # False when the time defaulted to "received now"

    def note(self, text: str) -> None:
        if self.notes is None:
            self.notes = []
        self.notes.append(text)


async def lock_shared(conn: Connection, ctx: TenantContext) -> None:
    await conn.execute("select pg_advisory_xact_lock_shared($1, hashtext($2))",
                       LOCK_NAMESPACE, ctx.tenant_id)


async def lock_shared_and_load(conn: Connection, ctx: TenantContext) -> DataConfig:
    """`lock_shared` and `load_data_config` in one round trip (every ingestion batch
    starts with both)."""
    return await load_data_config(conn, ctx, shared_lock=(LOCK_NAMESPACE, ctx.tenant_id))


async def lock_exclusive(conn: Connection, ctx: TenantContext) -> None:
    await conn.execute("select pg_advisory_xact_lock($1, hashtext($2))",
                       LOCK_NAMESPACE, ctx.tenant_id)


def sort_ids(rules: IdentityRules, ids: list[Key]) -> list[Key]:
    return sorted(ids, key=lambda k: -priority_of(rules, k[0]))


async def lookup(conn: Connection, ctx: TenantContext, keys: list[Key]) -> dict[Key, tuple]:
    """(kind, value) -> (customer_id, status, stale) for the identifiers that exist; `stale`
    when last_seen is older than LAST_SEEN_RESOLUTION."""
    if not keys:
        return {}
    # One index probe per identifier (a lateral subquery the planner cannot flatten): as a
    # join, stale statistics made it hash the tenant's whole identifiers table per batch.
    # Positions come back instead of the keys, and booleans instead of the status and the
    # time: less to decode, and the caller's key tuples are reused.
    row = await conn.fetchrow(
        """select array_agg(q.n), array_agg(i.customer_id), array_agg(i.status = 'active'),
                  array_agg(i.last_seen < now() - $4::interval)
           from unnest($2::text::text[], $3::text::text[]) with ordinality as q(kind, value, n)
           cross join lateral (select customer_id, status, last_seen from identifiers i
                               where i.tenant_id = $1 and i.kind = q.kind and i.value = q.value
                               offset 0) i""",
        ctx.tenant_id, array_literal([k for k, _ in keys]), array_literal([v for _, v in keys]),
        LAST_SEEN_RESOLUTION)
    if row[0] is None:
        return {}
    return {keys[n - 1]: (cid, "active" if active else "demoted", stale)
            for n, cid, active, stale in zip(*row, strict=True)}


async def check_explicit_customers(conn: Connection, ctx: TenantContext,
                                   records: list[Record], *, known: bool = False) -> None:
    """Records naming a customer_id: follow merges to the survivor; refuse unknown or
    erased profiles. `known`: the ids come from an identification just made (profiles
    are never deleted), so only merges and erasures since then need looking for."""
    wanted = list({r.customer_id for r in records if r.customer_id and not r.error})
    if not wanted:
        return
    if known:
        rows = await conn.fetch(
            """select id, merged_into, erased_at is not null as erased from customers
               where tenant_id = $1 and id = any($2::text::uuid[])
                 and (merged_into is not null or erased_at is not null)""",
            ctx.tenant_id, array_literal(wanted))
        if rows:
            _apply_exceptions(records, set(), {r[0]: (r[1], r[2]) for r in rows})
        return
    # One index probe per id, and only the exceptions come back (usually nothing): the
    # common case decodes no rows at all.
    row = await conn.fetchrow(
        """select array_agg(q.n) filter (where c.erased is null),
                  array_agg(q.n) filter (where c.erased or c.merged_into is not null),
                  array_agg(c.merged_into) filter (where c.erased or c.merged_into is not null),
                  array_agg(c.erased) filter (where c.erased or c.merged_into is not null)
           from unnest($2::text::uuid[]) with ordinality as q(id, n)
           left join lateral (select c.merged_into, c.erased_at is not null as erased
                              from customers c where c.tenant_id = $1 and c.id = q.id
                              offset 0) c on true""",
        ctx.tenant_id, array_literal(wanted))
    missing = {wanted[n - 1] for n in row[0] or ()}
    odd = {wanted[n - 1]: (merged_into, erased)
           for n, merged_into, erased in zip(row[1] or (), row[2] or (), row[3] or (),
                                             strict=True)}
    if missing or odd:
        _apply_exceptions(records, missing, odd)


def _apply_exceptions(records: list[Record], missing: set[uuid.UUID],
                      odd: dict[uuid.UUID, tuple[uuid.UUID | None, bool]]) -> None:
    for r in records:
        if r.customer_id is None or r.error:
            continue
        if r.customer_id in missing:
            r.error = ("no customer has this id", "customer_id")
        elif (exception := odd.get(r.customer_id)) is not None:
            merged_into, erased = exception
            if erased:
                r.error = ("this customer was erased (GDPR)", "customer_id")
            else:
                r.customer_id = merged_into


async def check_suppressions(conn: Connection, ctx: TenantContext, config: DataConfig,
                             hash_keys: Keys, records: list[Record], unknown: set[Key]) -> None:
    if not config.has_suppressions or not unknown:
        return
    key = config.suppression_key(hash_keys)
    hashes = {hash_identifier(kind, value, key): (kind, value) for kind, value in unknown}
    rows = await conn.fetch(
        """select s.value_hash from unnest($2::text[], $3::text[]) as q(kind, value_hash)
           join suppressions s on s.tenant_id = $1 and s.kind = q.kind
                              and s.value_hash = q.value_hash""",
        ctx.tenant_id, [k for k, _ in hashes.values()], list(hashes))
    suppressed = {hashes[r[0]] for r in rows}
    for r in records:
        hit = next((k for k in r.ids if k in suppressed), None)
        if hit and not r.error:
            r.error = (SUPPRESSED_REASON, f"identifiers.{hit[0]}")


def _components(records: list[Record]) -> list[tuple[Record, ...]]:
    first_holder: dict[Key, int] = {}
    if not any(first_holder.setdefault(key, i) != i
               for i, r in enumerate(records) for key in r.ids):
        return [(r,) for r in records]  # no identifier shared (the usual batch)
    first_holder.clear()
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, r in enumerate(records):
        for key in r.ids:
            j = first_holder.setdefault(key, i)
            if j != i:
                parent[find(i)] = find(j)
    groups: dict[int, list[Record]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[find(i)].append(r)
    # Tuples of records: the cyclic GC stops tracking them (records are gc=False).
    return [tuple(group) for group in groups.values()]


def _new_id() -> uuid.UUID:
    """A random (version 4) UUID, as `uuid.uuid4()` makes, at a tenth of its cost: random
    bytes drawn 4 KiB at a time, asyncpg's C UUID type."""
    global _random, _random_at
    if _random_at >= len(_random):
        _random, _random_at = bytearray(os.urandom(4096)), 0
    raw = _random[_random_at:_random_at + 16]
    _random_at += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return PgUUID(bytes(raw))


def _forget_random() -> None:
    global _random, _random_at
    _random, _random_at = bytearray(), 0


_random, _random_at = bytearray(), 0
# A forked process must not draw the ids its parent has buffered.
os.register_at_fork(after_in_child=_forget_random)


class _Plan:
    def __init__(self) -> None:
        self.new_customers: dict[uuid.UUID, list[Record]] = {}
        self.attach: dict[uuid.UUID, list[Key]] = defaultdict(list)  # existing targets
        self.updates: dict[uuid.UUID, list[Record]] = defaultdict(list)
        self.intended: dict[Key, uuid.UUID] = {}


def _plan(config: DataConfig, records: list[Record], owners: dict[Key, tuple]) -> _Plan:
    plan = _Plan()
    for group in _components(records):
        active: set[uuid.UUID] = set()
        demoted: set[uuid.UUID] = set()
        new_keys: list[Key] = []
        for r in group:
            if r.customer_id:
                active.add(r.customer_id)
            for key in r.ids:
                owner = owners.get(key)
                if owner is None:
                    if key not in new_keys:
                        new_keys.append(key)
                elif owner[1] == "active":
                    active.add(owner[0])
                else:
                    demoted.add(owner[0])
        candidates = active or demoted
        if len(candidates) > 1:
            for r in group:
                r.slow = True
            continue
        if candidates:
            target = next(iter(candidates))
            plan.attach[target].extend(new_keys)
            if any(r.traits for r in group):
                plan.updates[target].extend(group)
        else:
            per_kind: dict[str, int] = defaultdict(int)
            for kind, _ in new_keys:
                per_kind[kind] += 1
            if any((lim := limit_of(config.rules, k)) is not None and n > lim
                   for k, n in per_kind.items()):
                for r in group:  # one group would get too many ids of a kind: decide slowly
                    r.slow = True
                continue
            target = _new_id()
            plan.new_customers[target] = group
        for key in new_keys:
            plan.intended[key] = target
        for r in group:
            r.resolved = target
            r.created = not candidates
    return plan


def _missing_required(config: DataConfig, profile: tuple) -> list[str]:
    columns, attributes, _meta = profile
    return [name for name in config.required_fields
            if columns.get(name, attributes.get(name)) is None]


def _new_profile(group: list[Record], source: str,
                 rules: IdentityRules) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    if len(group) == 1:
        # One record on an empty profile: survivorship has nothing to compare, every
        # non-empty trait is taken (what `apply_traits` decides, without its rule lookups).
        r = group[0]
        stamp = r.seen_at.isoformat()
        traits = r.traits or {}
        for kind, value in r.ids:
            if kind in ("email", "phone") and kind not in traits and kind not in values:
                values[kind] = value
                meta[kind] = (stamp, source, stamp)
        for name, value in traits.items():
            if value is not None:
                values[name] = value
                meta[name] = (stamp, source, stamp)
        columns, attributes = join_profile(values)
        return columns, attributes, meta
    for r in sorted(group, key=lambda r: r.seen_at):
        traits = dict(r.traits or {})
        for kind, value in r.ids:
            if kind in ("email", "phone"):
                traits.setdefault(kind, value)
        apply_traits(values, meta, traits, r.seen_at, source, rules)
    columns, attributes = join_profile(values)
    return columns, attributes, meta


# Identifiers to attach and the new profiles that hold them. Rows are sorted by kind and
# value (bytewise, as `collate "C"` compares) so concurrent batches lock in one order.
_ATTACH = """
    with ins as (
      insert into identifiers (tenant_id, kind, value, customer_id, source, status)
      select $1, q.kind, q.value, q.customer_id, $2, q.status
      from unnest($3::text::text[], $4::text::text[], $5::text::uuid[], $6::text::text[])
           as q(kind, value, customer_id, status)
      order by q.kind collate "C", q.value collate "C"
      {conflict}
      returning {returning}),
    created as (
      insert into customers (tenant_id, id, first_name, last_name, email, phone, language,
                             country, birth_date, postal_code, attributes, field_meta)
      select $1, c.* from rows from (
             unnest($7::text::uuid[]), unnest($8::text::text[]), unnest($9::text::text[]),
             unnest($10::text::text[]), unnest($11::text::text[]), unnest($12::text::text[]),
             unnest($13::text::text[]), unnest($14::text::date[]), unnest($15::text::text[]),
             jsonb_array_elements($16::text::jsonb), jsonb_array_elements($17::text::jsonb))
           as c(id, fn, ln, em, ph, la, co, bd, pc, at, fm)
      {only_won}
      returning id)
    select {select} from ins"""


async def resolve_fast(conn: Connection, ctx: TenantContext, config: DataConfig,
                       records: list[Record], source: str, *, hash_keys: Keys,
                       known_customers: bool = False) -> None:
    """Resolve what can be resolved without a merge; marks the rest `slow` or `error`.
    `hash_keys`: the `db.keys` the suppression list is matched with.
    `known_customers`: see `check_explicit_customers`."""
    await check_explicit_customers(conn, ctx, records, known=known_customers)
    live = [r for r in records if r.error is None]
    keys = list({k for r in live for k in r.ids})
    owners = await lookup(conn, ctx, keys)
    await check_suppressions(conn, ctx, config, hash_keys, live,
                             {k for k in keys if k not in owners})
    live = [r for r in live if r.error is None]
    # The common case needs no planning: every identifier known, all on one active profile.
    pending = []
    for r in live:
        if r.customer_id is None and r.traits is None and r.ids:
            first = owners.get(r.ids[0])
            if first is not None and first[1] == "active" and all(
                    (o := owners.get(k)) is not None and o[0] == first[0] for k in r.ids[1:]):
                r.resolved = first[0]
                continue
        pending.append(r)
    plan = _plan(config, pending, owners)

    # Lock, once and in id order, every existing profile this batch changes: profiles that
    # gain identifiers under a limit (two batches must not both add "the one" ticketing
    # id) and profiles whose traits change.
    limited = {t: [k for k in keys if limit_of(config.rules, k[0]) is not None]
               for t, keys in plan.attach.items()}
    limited = {t: keys for t, keys in limited.items() if keys}
    rows = []
    if limited or plan.updates:
        # One index probe per profile, locked in id order; JSON comes back as text (decoded
        # only for the profiles that change), the row address serves the update.
        rows = await conn.fetch(
            f"""select c.* from unnest($2::text::uuid[]) as q(id)
                cross join lateral (
                  select id, ctid::text, {", ".join(PROFILE_COLUMNS)}, attributes::text,
                         field_meta::text
                  from customers c where c.tenant_id = $1 and c.id = q.id
                  offset 0 for update) c""",
            ctx.tenant_id, array_literal(sorted(set(limited) | set(plan.updates))))
    demote = await _demotions(conn, ctx, config, limited)
    if plan.updates:
        await _apply_updates(conn, ctx, config, plan, source,
                             [r for r in rows if r["id"] in plan.updates])

    built = []
    for cid, group in list(plan.new_customers.items()):
        profile = _new_profile(group, source, config.rules)
        missing = _missing_required(config, profile) if config.required_fields and any(
            r.traits is not None for r in group) else []
        if missing:
            for r in group:
                r.error = (f"a new profile needs {', '.join(missing)}", f"traits.{missing[0]}")
                r.resolved = None
            del plan.new_customers[cid]
            for key in [k for k, c in plan.intended.items() if c == cid]:
                del plan.intended[key]
            continue
        built.append(profile)
    # One statement: attach identifiers, and create the profiles that won at least one.
    ident_keys = sorted(plan.intended)
    lost: set[Key] = set()
    if ident_keys:
        intended = plan.intended
        args = (ctx.tenant_id, source,
                array_literal([k[0] for k in ident_keys]),
                array_literal([k[1] for k in ident_keys]),
                array_literal([intended[k] for k in ident_keys]),
                array_literal(["demoted" if k in demote else "active" for k in ident_keys]),
                array_literal(list(plan.new_customers)),
                *(array_literal([b[0][c] for b in built]) for c in PROFILE_COLUMNS),
                _json([b[1] for b in built]), _json([b[2] for b in built]))
        try:
            # Plainly first: the lookup found none of these identifiers, so a conflict
            # means a concurrent batch just took one (rare), and ON CONFLICT's speculative
            # insertion costs more than the insert. On a conflict the statement runs again
            # with ON CONFLICT, and the records of the identifiers it lost go slow.
            async with conn.transaction():
                await conn.execute(_ATTACH.format(conflict="", returning="1", only_won="",
                                                  select="1"), *args)
        except asyncpg.UniqueViolationError:
            won = await conn.fetch(_ATTACH.format(
                conflict="on conflict do nothing", returning="kind, value, customer_id",
                only_won="where c.id in (select customer_id from ins)",
                select="kind, value"), *args)
            lost = set(plan.intended) - {(r[0], r[1]) for r in won}
    for r in pending if lost or demote else ():
        if r.error:
            continue
        if any(k in lost for k in r.ids):
            # A concurrent batch took this identifier first: the record is decided again,
            # on its own, by the slow path.
            r.slow, r.resolved, r.created = True, None, False
        elif any(k in demote for k in r.ids):
            r.note(DEMOTED_NOTE)
    await _touch_last_seen(conn, ctx, owners)


async def _demotions(conn: Connection, ctx: TenantContext, config: DataConfig,
                     limited: dict[uuid.UUID, list[Key]]) -> set[Key]:
    """The new identifiers to store as demoted: their profile (already locked) holds its
    limit of that kind."""
    if not limited:
        return set()
    targets = sorted(limited)
    kinds = sorted({k for keys in limited.values() for k, _ in keys})
    rows = await conn.fetch(
        """select customer_id, kind, count(*) from identifiers
           where tenant_id = $1 and customer_id = any($2::uuid[]) and kind = any($3::text[])
             and status = 'active' group by 1, 2""", ctx.tenant_id, targets, kinds)
    counts = {(r[0], r[1]): r[2] for r in rows}
    demote: set[Key] = set()
    for target, keys in limited.items():
        for key in sort_ids(config.rules, keys):
            n = counts.get((target, key[0]), 0)
            if n >= (limit_of(config.rules, key[0]) or 0):
                demote.add(key)
            else:
                counts[(target, key[0])] = n + 1
    return demote


async def _apply_updates(conn: Connection, ctx: TenantContext, config: DataConfig,
                         plan: _Plan, source: str, rows: list) -> None:
    """Identify traits on existing (locked) profiles: fold with survivorship, write back."""
    changed_rows = []
    for row in rows:
        profile = dict(row)
        profile["attributes"] = _decode(row["attributes"])
        values = split_profile(profile)
        meta = _decode(row["field_meta"])
        changed: set[str] = set()
        for r in sorted(plan.updates[row["id"]], key=lambda r: r.seen_at):
            traits = dict(r.traits or {})
            for kind, value in r.ids:
                if kind in ("email", "phone"):
                    traits.setdefault(kind, value)
            changed |= apply_traits(values, meta, traits, r.seen_at, source, config.rules)
        if changed:
            columns, attributes = join_profile(values)
            changed_rows.append((row["id"], row["ctid"], columns, attributes, meta))
    if changed_rows:
        # By row address (the rows are locked, so it holds): a join on id could scan the
        # tenant's whole customers table.
        await conn.execute(
            f"""update customers c set {", ".join(f"{n} = u.{n}" for n in PROFILE_COLUMNS)},
                    attributes = u.attributes, field_meta = u.field_meta, updated_at = now()
                from rows from (unnest($2::text::uuid[]), unnest($3::text::tid[]),
                                {", ".join(f"unnest(${i}::text::{t}[])" for i, t in
                                           enumerate(_COLUMN_TYPES, start=4))},
                                jsonb_array_elements($12::text::jsonb),
                                jsonb_array_elements($13::text::jsonb))
                     as u(id, t, {", ".join(PROFILE_COLUMNS)}, attributes, field_meta)
                where c.tenant_id = $1 and c.ctid = u.t and c.id = u.id""",
            ctx.tenant_id, array_literal([c[0] for c in changed_rows]),
            array_literal([c[1] for c in changed_rows]),
            *(array_literal([c[2][n] for c in changed_rows]) for n in PROFILE_COLUMNS),
            _json([c[3] for c in changed_rows]), _json([c[4] for c in changed_rows]))


async def _touch_last_seen(conn: Connection, ctx: TenantContext,
                           owners: dict[Key, tuple]) -> None:
    # Identifiers seen again refresh last_seen at most hourly: a write per event would
    # double the cost of ingestion for a value nobody needs to the second.
    stale = sorted(k for k, (_c, _s, is_stale) in owners.items() if is_stale)
    if stale:
        # Probed one by one (never a hash of the whole table), then updated by row address
        # in address order, so concurrent batches lock the rows they touch in one order.
        await conn.execute(
            """update identifiers set last_seen = now()
               where tenant_id = $1 and ctid = any(array(
                 select x.ctid from unnest($2::text[], $3::text[]) as q(kind, value)
                 cross join lateral (select ctid from identifiers x
                                     where x.tenant_id = $1 and x.kind = q.kind
                                       and x.value = q.value offset 0) x))""",
            ctx.tenant_id, [k for k, _ in stale], [v for _, v in stale])


_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode


def _json(documents: list[Any]) -> str:
    """Documents as one JSON array, split by `jsonb_array_elements` in SQL: one encoding
    call instead of one per document plus a jsonb[] literal around them."""
    return _encode(documents).decode()
