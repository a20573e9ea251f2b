"""Ingestion: events and identify calls, in batches, set-based.

`ingest_events` and `identify` are the one entry point for every producer (the API,
file imports, connectors). A batch runs in one transaction on the fast path (identity
resolution for the whole batch, one INSERT … ON CONFLICT for its events); records that need
a merge run afterwards, one at a time, under the tenant's exclusive identity lock. Every
item gets a result: accepted (with its customer_id), duplicate, rejected or quarantined.
Replays are duplicates because `(tenant_id, message_id)` is unique and the insert skips
conflicts, which also holds for concurrent replays (the second waits for the first).

Each of the two transactions is retried from its start when PostgreSQL aborts it as a
deadlock victim (`core.events.retry`); the slow path is retried on its own, so what the fast
path committed stays accepted. After both, the plugins' reactions are fired once per call
(`core.events.reactions`): the events newly stored, the merges made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from core.audit.service import record
from core.db import Connection, Database
from core.errors import InvalidInput, NotFound
from core.events.prepare import decode_items, prepare_event, prepare_identify
from core.events.reactions import Listeners, Reactions, listeners_of
from core.events.retry import retrying_tenant_tx
from core.events.schemas import (
    EventIn,
    IdentifyIn,
    ItemResult,
    QuarantinedEvent,
    StoredEvent,
)
from core.identity.arrays import array_literal
from core.identity.merge import resolve_one
from core.identity.resolve import (
    Record,
    lock_exclusive,
    lock_shared_and_load,
    resolve_fast,
)
from core.model.service import DataConfig
from core.pagination import Page, check_limit, decode_cursor, page_of
from plugins.types import CustomerMerge
from tenants.context import TenantContext

_encode = msgspec.json.Encoder().encode
# Long loops over a batch yield to the event loop every so many items, so other batches in
# flight (concurrent requests, a file import's next batch) get their statements sent.
_YIELD_EVERY = 500
# Rows arrive sorted by message_id (bytewise, as `collate "C"` compares; the sort then only
# checks the order) so concurrent batches take index locks in the same order.
_INSERT_EVENTS = """
      insert into events (tenant_id, message_id, customer_id, type, occurred_at, properties,
                          source)
      select $1, u.m, u.c, u.t, u.o, u.p, $2
      from rows from (unnest($3::text::text[]), unnest($4::text::uuid[]),
                      unnest($5::text::text[]), unnest($6::text::timestamptz[]),
                      jsonb_array_elements($7::text::jsonb)) as u(m, c, t, o, p)
      order by u.m collate "C"
"""
# After a conflict: the rows stored, named when some were replays.
_INSERT_EVENTS_SKIPPING_REPLAYS = f"""
    with stored as ({_INSERT_EVENTS}
      on conflict (tenant_id, message_id) do nothing
      returning message_id)
    select count(*), case when count(*) < $8 then array_agg(message_id) end from stored"""


async def ingest_events(db: Database, ctx: TenantContext, items: Sequence[EventIn | ItemResult],
                        *, source: str, known_customers: bool = False,
                        reactions: Reactions | None = None) -> list[ItemResult]:
    """One result per item, in order. Items already rejected by the caller (an
    `ItemResult`, e.g. a body that did not decode) pass through unchanged.
    `known_customers`: the items' customer_ids come from an `identify` call the caller
    just made (a file import), so only merges and erasures since are looked for.
    `reactions`: the plugins to tell about the events stored and the merges made."""
    now = datetime.now(UTC)

    async def fast_path(conn: Connection) -> _Batch:
        # Everything from the items, in this function: a retried transaction starts over.
        config = await lock_shared_and_load(conn, ctx)
        batch = _Batch(config, [None] * len(items), await listeners_of(reactions, conn, ctx))
        results, records = batch.results, batch.records
        quarantine: list[tuple[int, EventIn, list]] = []
        seen_ids: set[str] = set()
        region = ctx.country
        for i, item in enumerate(items):
            if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
            if item.__class__ is ItemResult:
                results[i] = item  # type: ignore[assignment]
                continue
            if item.message_id in seen_ids:
                results[i] = ItemResult(index=i, status="duplicate",
                                        reason="message_id repeated in this batch")
                continue
            seen_ids.add(item.message_id)
            prepared = prepare_event(i, item, config, region, now)  # type: ignore[arg-type]
            if prepared.__class__ is Record:
                records.append(prepared)  # type: ignore[arg-type]
            elif prepared.__class__ is ItemResult:
                results[i] = prepared  # type: ignore[assignment]
            else:
                quarantine.append((i, item, prepared))  # type: ignore[arg-type]
        await resolve_fast(conn, ctx, config, records, source, hash_keys=db.keys,
                           known_customers=known_customers)
        batch.stored = await _insert_events(
            conn, ctx, config, [r for r in records if not r.slow and r.error is None], results,
            source, collect=batch.listeners.events)
        await _quarantine(conn, ctx, quarantine, results, source)
        _errors(records, results)
        await _audit(conn, ctx, "events.ingested", source, results, len(items))
        return batch

    return await _finish(db, ctx, await retrying_tenant_tx(db, ctx, fast_path), source)


class _Batch:
    """What an ingestion call's fast-path transaction decided."""

    __slots__ = ("config", "listeners", "records", "results", "stored")

    def __init__(self, config: DataConfig, results: list[ItemResult | None],
                 listeners: Listeners, records: list[Record] | None = None) -> None:
        self.config, self.results, self.listeners = config, results, listeners
        self.records: list[Record] = [] if records is None else records
        self.stored: list[Record] = []  # events newly stored (collected for listeners only)


async def _finish(db: Database, ctx: TenantContext, batch: _Batch,
                  source: str) -> list[ItemResult]:
    """The slow path (its own transaction), then the reactions to whatever committed: the
    fast path's events are told even when the slow path fails, since they are stored and
    a retry of the call would only find them as duplicates."""
    stored, merges = batch.stored, []
    try:
        slow = [r for r in batch.records if r.slow]
        if slow:
            more, merges = await _slow_path(db, ctx, batch.config, slow, batch.results, source,
                                            collect=batch.listeners.events)
            stored = stored + more
    finally:
        await batch.listeners.fire(ctx, source, stored, merges)
    return batch.results  # type: ignore[return-value]


class PreparedIdentify:
    """Identify items checked against a data config ahead of their transaction, so a
    caller with several batches in flight (a file import) does this CPU work while
    another batch's statements run. `identify` uses it if the config it reads in its
    transaction is still the same, and prepares the items again otherwise (updating
    `config` here, for the caller's next batches)."""

    __slots__ = ("config", "items", "now", "records", "results")

    def __init__(self, ctx: TenantContext, config: DataConfig,
                 items: Sequence[IdentifyIn | ItemResult]) -> None:
        self.items = items
        self.prepare(ctx, config)

    @classmethod
    async def build(cls, ctx: TenantContext, config: DataConfig,
                    items: Sequence[IdentifyIn | ItemResult]) -> PreparedIdentify:
        """Prepared likewise, yielding to the event loop every so many items (the caller
        has other batches in flight)."""
        self = cls.__new__(cls)
        self.items = items
        self._start(config)
        for i, item in enumerate(items):
            if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
            self._add(ctx, i, item)
        return self

    def prepare(self, ctx: TenantContext, config: DataConfig) -> None:
        self._start(config)
        for i, item in enumerate(self.items):
            self._add(ctx, i, item)

    def _start(self, config: DataConfig) -> None:
        self.config, self.now = config, datetime.now(UTC)
        self.results: list[ItemResult | None] = [None] * len(self.items)
        self.records: list[Record] = []

    def _add(self, ctx: TenantContext, i: int, item: IdentifyIn | ItemResult) -> None:
        if isinstance(item, ItemResult):
            self.results[i] = item
            return
        prepared = prepare_identify(i, item, self.config, ctx.country, self.now)
        if isinstance(prepared, ItemResult):
            self.results[i] = prepared
        else:
            self.records.append(prepared)


async def identify(db: Database, ctx: TenantContext, items: Sequence[IdentifyIn | ItemResult],
                   *, source: str, prepared: PreparedIdentify | None = None,
                   reactions: Reactions | None = None) -> list[ItemResult]:
    """Upsert profiles by identifiers and traits. With a `message_id`, a call is
    idempotent (a replay is reported as duplicate) and shows in the timeline.
    `prepared`: the same items, already prepared (see `PreparedIdentify`).
    `reactions`: the plugins to tell about the identify events stored and the merges made."""
    attempts = 0

    async def fast_path(conn: Connection) -> _Batch:
        nonlocal attempts, prepared
        attempts += 1
        config = await lock_shared_and_load(conn, ctx)
        if prepared is None:
            prepared = PreparedIdentify(ctx, config, items)
        elif attempts > 1 or prepared.config != config:
            # A retried transaction starts from fresh records (resolution changed them), as
            # does a data model changed meanwhile.
            prepared.prepare(ctx, config)
        batch = _Batch(config, prepared.results, await listeners_of(reactions, conn, ctx),
                       prepared.records)
        records, results = batch.records, batch.results
        await resolve_fast(conn, ctx, config, records, source, hash_keys=db.keys)
        batch.stored = await _insert_events(
            conn, ctx, config, [r for r in records if not r.slow and r.error is None], results,
            source, collect=batch.listeners.events)
        _errors(records, results)
        await _audit(conn, ctx, "customers.identified", source, results, len(items))
        return batch

    return await _finish(db, ctx, await retrying_tenant_tx(db, ctx, fast_path), source)


async def ingest_raw_events(db: Database, ctx: TenantContext, raws: list[msgspec.Raw], *,
                            source: str) -> list[ItemResult]:
    return await ingest_events(db, ctx, decode_items(raws, EventIn), source=source)


async def identify_raw(db: Database, ctx: TenantContext, raws: list[msgspec.Raw], *,
                       source: str) -> list[ItemResult]:
    return await identify(db, ctx, decode_items(raws, IdentifyIn), source=source)


def _errors(records: list[Record], results: list[ItemResult | None]) -> None:
    for r in records:
        if r.error:
            reason, field = r.error
            results[r.index] = ItemResult(index=r.index, status="rejected", reason=reason,
                                          field=f"items[{r.index}].{field}")


async def _insert_events(conn: Connection, ctx: TenantContext, config: DataConfig,
                         records: list[Record], results: list[ItemResult | None],
                         source: str, *, collect: bool = False) -> list[Record]:
    """Store the events of resolved records; every record gets its result. With
    `collect`, returns the records whose event this call newly stored (not replays)."""
    with_event = sorted((r for r in records if r.message_id is not None),
                        key=_by_message_id)
    properties = _encode([r.properties for r in with_event])
    if b"\\u0000" in properties:  # jsonb cannot store NUL: refuse those items alone
        bad = [r for r in with_event if b"\\u0000" in _encode(r.properties)]
        for r in bad:
            r.error = ("a property holds a NUL character", "properties")
        _errors(bad, results)
        records = [r for r in records if r.error is None]
        with_event = [r for r in with_event if r.error is None]
        properties = _encode([r.properties for r in with_event])
    stored: set[str] | None = None
    if with_event:
        args = (ctx.tenant_id, source, array_literal([r.message_id for r in with_event]),
                array_literal([r.resolved for r in with_event]),
                array_literal([r.event_type for r in with_event]),
                array_literal([r.seen_at for r in with_event]),
                # One JSON document for all properties: no per-event encoding or escaping.
                properties.decode(), len(with_event))
        try:
            # A plain INSERT first: replays are rare, and probing the unique index for each
            # row (or ON CONFLICT's speculative insertion) costs PostgreSQL a third more
            # than the insert itself. A batch holding a replay (or racing a concurrent one)
            # fails as a whole at its first duplicate: then ON CONFLICT decides.
            async with conn.transaction():
                await conn.execute(_INSERT_EVENTS, *args[:-1])
            inserted = len(with_event)
        except asyncpg.UniqueViolationError:
            row = await conn.fetchrow(_INSERT_EVENTS_SKIPPING_REPLAYS, *args)
            inserted = row[0]
            if inserted < len(with_event):  # some were replays: name them
                stored = set(row[1] or ())
        if config.has_quarantine and inserted:
            # A quarantined event sent again once the plan accepts it leaves the quarantine.
            await conn.execute(
                """delete from event_quarantine
                   where tenant_id = $1 and message_id = any($2::text[])""",
                ctx.tenant_id, [r.message_id for r in with_event])
    conflicting = await _different_replays(conn, ctx, [
        r for r in with_event if r.message_id not in stored]) if stored is not None else set()
    for r in records:
        if r.index in conflicting:
            results[r.index] = ItemResult(
                index=r.index, status="rejected", field=f"items[{r.index}].message_id",
                reason="message_id already used by a different event (same key, other body)")
        elif stored is not None and r.message_id is not None and r.message_id not in stored:
            results[r.index] = ItemResult(index=r.index, status="duplicate",
                                          reason="message_id already ingested",
                                          customer_id=r.resolved)
        else:
            results[r.index] = ItemResult(index=r.index, status="accepted",
                                          customer_id=r.resolved,
                                          reason="; ".join(r.notes) if r.notes else None)
    if not collect:
        return []
    if stored is None:  # the plain insert stored every one
        return with_event
    return [r for r in with_event if r.message_id in stored and r.index not in conflicting]


def _by_message_id(r: Record) -> str:
    return r.message_id  # type: ignore[return-value]


async def _different_replays(conn: Connection, ctx: TenantContext,
                             replays: list[Record]) -> set[int]:
    """Indexes of replays whose body differs from the stored event (type, time or
    properties): an idempotency key reused for something else is an error, not a replay.
    Identify calls compare their type only (their traits may legitimately be re-sent)."""
    if not replays:
        return set()
    rows = await conn.fetch(
        """select message_id, type, occurred_at, properties from events
           where tenant_id = $1 and message_id = any($2::text[])""",
        ctx.tenant_id, [r.message_id for r in replays])
    stored = {row["message_id"]: row for row in rows}
    different = set()
    for r in replays:
        row = stored.get(r.message_id)  # type: ignore[arg-type]
        if row is None:
            continue  # stored by a concurrent replay still in flight: a duplicate
        if row["type"] != r.event_type or (r.event_type != "identify" and (
                (r.timed and row["occurred_at"] != r.seen_at)
                or row["properties"] != (r.properties or {}))):
            different.add(r.index)
    return different


async def _quarantine(conn: Connection, ctx: TenantContext,
                      items: list[tuple[int, EventIn, list]],
                      results: list[ItemResult | None], source: str) -> None:
    if not items:
        return
    nul = [entry for entry in items if b"\\u0000" in _encode(entry[1])]
    for i, _item, _problems in nul:  # jsonb cannot store NUL
        results[i] = ItemResult(index=i, status="rejected", field=f"items[{i}]",
                                reason="the event holds a NUL character")
    items = [entry for entry in items if entry not in nul]
    if not items:
        return
    payloads = [msgspec.json.encode(item).decode() for _, item, _ in items]
    reasons = [msgspec.json.encode([{"field": p.field, "reason": p.reason} for p in problems])
               .decode() for _, _, problems in items]
    inserted = await conn.fetch(
        """insert into event_quarantine (tenant_id, message_id, type, payload, reasons, source)
           select $1, u.m, u.t, u.p::jsonb, u.r::jsonb, $2
           from unnest($3::text[], $4::text[], $5::text[], $6::text[]) as u(m, t, p, r)
           where not exists (select 1 from events e
                             where e.tenant_id = $1 and e.message_id = u.m)
           order by u.m
           on conflict (tenant_id, message_id) do nothing
           returning message_id""",
        ctx.tenant_id, source, [item.message_id for _, item, _ in items],
        [item.type for _, item, _ in items], payloads, reasons)
    stored = {row[0] for row in inserted}
    for (i, item, problems) in items:
        if item.message_id in stored:
            results[i] = ItemResult(index=i, status="quarantined",
                                    reason="; ".join(f"{p.field} {p.reason}" for p in problems))
        else:
            results[i] = ItemResult(index=i, status="duplicate",
                                    reason="message_id already ingested")


async def _slow_path(db: Database, ctx: TenantContext, config: DataConfig, slow: list[Record],
                     results: list[ItemResult | None], source: str, *,
                     collect: bool = False) -> tuple[list[Record], list[CustomerMerge]]:
    """The records that need a merge, one at a time under the exclusive identity lock, in a
    transaction of their own: retried alone when PostgreSQL aborts it, so the fast path's
    committed items stay accepted. Returns the events stored (with `collect`) and the
    merges made."""
    # What resolution changes on a record, as the fast path left it: a retry starts there.
    initial = [(r.resolved, r.created, r.error, r.notes) for r in slow]

    async def attempt(conn: Connection) -> tuple[list[Record], list[CustomerMerge]]:
        for r, (resolved, created, error, notes) in zip(slow, initial, strict=True):
            r.resolved, r.created, r.error = resolved, created, error
            r.notes = list(notes) if notes else None
        await lock_exclusive(conn, ctx)
        done, merges = [], []
        for r in slow:
            made: list[CustomerMerge] = []
            try:
                async with conn.transaction():  # a savepoint: one bad record stays alone
                    await resolve_one(conn, ctx, config, r, source, made)
                done.append(r)
                merges += made  # a record rolled back to its savepoint merged nothing
            except InvalidInput as err:
                r.error = (err.detail, err.field or "identifiers")
        stored = await _insert_events(conn, ctx, config, done, results, source,
                                      collect=collect)
        _errors(slow, results)
        return stored, merges

    return await retrying_tenant_tx(db, ctx, attempt)


async def _audit(conn: Connection, ctx: TenantContext, action: str, source: str,
                 results: list[ItemResult | None], total: int) -> None:
    # Written before the slow path decides its records: those count as "pending" here.
    counts: dict[str, Any] = {"source": source, "items": total}
    for r in results:
        status = r.status if r is not None else "pending"
        counts[status] = counts.get(status, 0) + 1
    await record(conn, ctx, action, "batch", None, counts)


# -- reading ------------------------------------------------------------------------------


async def list_quarantine(db: Database, ctx: TenantContext, *, cursor: str | None,
                          limit: int) -> Page[QuarantinedEvent]:
    check_limit(limit)
    after = decode_cursor(cursor, int)
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            """select id, message_id, type, payload, reasons, source, received_at
               from event_quarantine where ($1::bigint is null or id < $1)
               order by id desc limit $2""", after, limit + 1)
    items = [QuarantinedEvent(**dict(r)) for r in rows]
    return page_of(items, limit, lambda e: e.id)


async def get_event(db: Database, ctx: TenantContext, message_id: str) -> StoredEvent:
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            """select id, message_id, customer_id, type, occurred_at, received_at, properties,
                      source from events where message_id = $1""", message_id)
    if row is None:
        raise NotFound("no event with this message_id")
    return StoredEvent(**dict(row))
