"""Consents per channel and purpose with an append-only history, and contact preferences.

The current state answers "may we contact this person on this channel for this purpose";
the history answers "since when and on what proof", which is what a regulator asks for.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.audit.service import record, record_many
from core.consents.schemas import (
    Consent,
    ConsentChange,
    ConsentChanges,
    ConsentHistoryEntry,
    Preferences,
    PreferencesUpdate,
    QuietHours,
    Subscription,
)
from core.db import Connection, Database
from core.errors import InvalidInput, NotFound, RelaisError
from core.identity.resolve import lock_shared
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import TenantContext

CONSENT_COLS = "channel, purpose, status, legal_basis, source, proof, updated_at"
PREFERENCE_COLS = "channels, language, quiet_start, quiet_end, timezone, updated_at"
SUBSCRIPTION_COLS = "kind, ref"


async def fetch_consents(conn: Connection, customer_id: uuid.UUID) -> list[Consent]:
    rows = await conn.fetch(
        f"select {CONSENT_COLS} from consents where customer_id = $1 order by channel, purpose",
        customer_id)
    return [Consent(**dict(r)) for r in rows]


async def fetch_preferences(conn: Connection, customer_id: uuid.UUID) -> Preferences | None:
    row = await conn.fetchrow(
        f"select {PREFERENCE_COLS} from preferences where customer_id = $1", customer_id)
    subs = await conn.fetch(
        f"select {SUBSCRIPTION_COLS} from transit_subscriptions where customer_id = $1 "
        "order by kind, ref", customer_id)
    return preferences_of(row, subs)


def preferences_of(row: Any, subs: Sequence[Any]) -> Preferences | None:
    """From a `PREFERENCE_COLS` row (or None) and `SUBSCRIPTION_COLS` rows, by position."""
    if row is None and not subs:
        return None
    channels, language, quiet_start, quiet_end, timezone, updated_at = \
        row if row is not None else ([], None, None, None, None, None)
    quiet = QuietHours(start=quiet_start, end=quiet_end) if quiet_start is not None else None
    return Preferences(channels=list(channels), language=language, quiet_hours=quiet,
                       timezone=timezone,
                       subscriptions=[Subscription(kind=kind, ref=ref) for kind, ref in subs],
                       updated_at=updated_at)


async def _live_customer(conn: Connection, customer_id: uuid.UUID) -> uuid.UUID:
    from core.customers.service import require_customer

    row = await require_customer(conn, customer_id)
    if row["erased_at"] is not None:
        raise InvalidInput("this customer was erased (GDPR)", field="customer_id")
    return row["id"]


async def list_consents(db: Database, ctx: TenantContext, customer_id: uuid.UUID
                        ) -> list[Consent]:
    async with db.tenant_tx(ctx) as conn:
        cid = await _live_customer(conn, customer_id)
        return await fetch_consents(conn, cid)


async def set_consents(db: Database, ctx: TenantContext, customer_id: uuid.UUID,
                       data: ConsentChanges) -> list[Consent]:
    now = datetime.now(UTC)
    for i, change in enumerate(data.items):
        at = change.at.replace(tzinfo=change.at.tzinfo or UTC) if change.at else now
        if at > now:
            raise InvalidInput("a consent decision cannot be in the future",
                               field=f"items[{i}].at")
    async with db.tenant_tx(ctx) as conn:
        cid = await _live_customer(conn, customer_id)
        for change in sorted(data.items, key=lambda c: c.at or now):
            at = change.at.replace(tzinfo=change.at.tzinfo or UTC) if change.at else now
            values = (change.channel, change.purpose, change.status, change.legal_basis,
                      change.source, change.proof)
            await conn.execute(
                """insert into consent_history (tenant_id, customer_id, channel, purpose, status,
                       legal_basis, source, proof, recorded_at, actor)
                   values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
                ctx.tenant_id, cid, *values, at, ctx.actor.label)
            # Only a decision at least as recent as the current one becomes the state.
            await conn.execute(
                f"""insert into consents (tenant_id, customer_id, {CONSENT_COLS})
                    values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                    on conflict (tenant_id, customer_id, channel, purpose) do update
                      set status = excluded.status, legal_basis = excluded.legal_basis,
                          source = excluded.source, proof = excluded.proof,
                          updated_at = excluded.updated_at
                      where consents.updated_at <= excluded.updated_at""",
                ctx.tenant_id, cid, *values, at)
        await record(conn, ctx, "consents.changed", "customer", str(cid),
                     {"changes": [{"channel": c.channel, "purpose": c.purpose,
                                   "status": c.status, "source": c.source}
                                  for c in data.items]})
        return await fetch_consents(conn, cid)


async def set_consents_many(db: Database, ctx: TenantContext,
                            changes: dict[uuid.UUID, list[ConsentChange]]
                            ) -> dict[uuid.UUID, RelaisError]:
    """`set_consents` for many customers in one transaction and a few set-based statements
    (imports): the same history rows, current state and audit entries as one call per
    customer in this order. A customer that is unknown or erased, or a change dated in the
    future, fails that customer alone: its error comes back, keyed by the id given."""
    now = datetime.now(UTC)
    failed: dict[uuid.UUID, RelaisError] = {}
    for cid, items in changes.items():
        for i, change in enumerate(items):
            if change.at and change.at.replace(tzinfo=change.at.tzinfo or UTC) > now:
                failed[cid] = InvalidInput("a consent decision cannot be in the future",
                                           field=f"items[{i}].at")
                break
    wanted = [cid for cid in changes if cid not in failed]
    if not wanted:
        return failed
    async with db.tenant_tx(ctx) as conn:
        # Merges move consents under the identity lock taken exclusively: holding it shared
        # keeps these writes from landing on a profile being merged away.
        await lock_shared(conn, ctx)
        # Like `require_customer`: a merged profile stands for its survivor.
        rows = await conn.fetch(
            """select q.n, c.id, c.erased_at is not null as erased
               from unnest($2::uuid[]) with ordinality as q(id, n)
               left join lateral (select coalesce(m.merged_into, m.id) as id from customers m
                                  where m.tenant_id = $1 and m.id = q.id offset 0) m on true
               left join lateral (select c.id, c.erased_at from customers c
                                  where c.tenant_id = $1 and c.id = m.id offset 0) c on true""",
            ctx.tenant_id, wanted)
        target: dict[uuid.UUID, uuid.UUID] = {}
        for row in rows:
            cid = wanted[row["n"] - 1]
            if row["id"] is None:
                failed[cid] = NotFound("no customer with this id")
            elif row["erased"]:
                failed[cid] = InvalidInput("this customer was erased (GDPR)",
                                           field="customer_id")
            else:
                target[cid] = row["id"]
        history: list[tuple[uuid.UUID, ConsentChange, datetime]] = []
        latest: dict[tuple[uuid.UUID, str, str], tuple[uuid.UUID, ConsentChange, datetime]] = {}
        audit: list[tuple[str | None, dict[str, Any]]] = []
        for cid, items in changes.items():
            if cid not in target:
                continue
            survivor = target[cid]
            dated = [(c, c.at.replace(tzinfo=c.at.tzinfo or UTC) if c.at else now)
                     for c in items]
            for change, at in sorted(dated, key=lambda d: d[1]):
                history.append((survivor, change, at))
                # Applied in this order, each decision replaces the state when at least as
                # recent: the state ends as the most recent one (the last of equals).
                key = (survivor, change.channel, change.purpose)
                if key not in latest or latest[key][2] <= at:
                    latest[key] = (survivor, change, at)
            audit.append((str(survivor), {"changes": [
                {"channel": c.channel, "purpose": c.purpose, "status": c.status,
                 "source": c.source} for c in items]}))
        if history:
            await conn.execute(
                """insert into consent_history (tenant_id, customer_id, channel, purpose,
                       status, legal_basis, source, proof, recorded_at, actor)
                   select $1, h.c, h.ch, h.pu, h.st, h.lb, h.so, h.pr, h.at, $2
                   from unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                               $8::text[], $9::text[], $10::timestamptz[])
                        with ordinality as h(c, ch, pu, st, lb, so, pr, at, n)
                   order by h.n""",
                ctx.tenant_id, ctx.actor.label, *_columns(history))
            state = sorted(latest.values(), key=lambda e: (e[0], e[1].channel, e[1].purpose))
            await conn.execute(
                f"""insert into consents (tenant_id, customer_id, {CONSENT_COLS})
                    select $1, s.c, s.ch, s.pu, s.st, s.lb, s.so, s.pr, s.at
                    from unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                                $7::text[], $8::text[], $9::timestamptz[])
                         as s(c, ch, pu, st, lb, so, pr, at)
                    on conflict (tenant_id, customer_id, channel, purpose) do update
                      set status = excluded.status, legal_basis = excluded.legal_basis,
                          source = excluded.source, proof = excluded.proof,
                          updated_at = excluded.updated_at
                      where consents.updated_at <= excluded.updated_at""",
                ctx.tenant_id, *_columns(state))
        await record_many(conn, ctx, "consents.changed", "customer", audit)
    return failed


def _columns(entries: list[tuple[uuid.UUID, ConsentChange, datetime]]) -> list[list[Any]]:
    return [[e[0] for e in entries], [e[1].channel for e in entries],
            [e[1].purpose for e in entries], [e[1].status for e in entries],
            [e[1].legal_basis for e in entries], [e[1].source for e in entries],
            [e[1].proof for e in entries], [e[2] for e in entries]]


async def consent_history(db: Database, ctx: TenantContext, customer_id: uuid.UUID, *,
                          cursor: str | None, limit: int) -> Page[ConsentHistoryEntry]:
    check_limit(limit)
    after = decode_cursor(cursor, int)
    async with db.tenant_tx(ctx) as conn:
        cid = await _live_customer(conn, customer_id)
        rows = await conn.fetch(
            """select id, channel, purpose, status, legal_basis, source, proof, recorded_at,
                      actor from consent_history
               where customer_id = $1 and ($2::bigint is null or id < $2)
               order by id desc limit $3""", cid, after, limit + 1)
    return page_of([ConsentHistoryEntry(**dict(r)) for r in rows], limit, lambda e: e.id)


async def get_preferences(db: Database, ctx: TenantContext, customer_id: uuid.UUID
                          ) -> Preferences:
    async with db.tenant_tx(ctx) as conn:
        cid = await _live_customer(conn, customer_id)
        prefs = await fetch_preferences(conn, cid)
    return prefs or Preferences(channels=[], language=None, quiet_hours=None, timezone=None,
                                subscriptions=[])


async def put_preferences(db: Database, ctx: TenantContext, customer_id: uuid.UUID,
                          data: PreferencesUpdate) -> Preferences:
    if len(set(data.channels)) != len(data.channels):
        raise InvalidInput("a channel is listed twice", field="channels")
    if data.timezone is not None:
        try:
            ZoneInfo(data.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"unknown time zone {data.timezone!r}", field="timezone") from None
    if data.quiet_hours and data.quiet_hours.start == data.quiet_hours.end:
        raise InvalidInput("quiet hours need different start and end", field="quiet_hours")
    quiet = data.quiet_hours
    async with db.tenant_tx(ctx) as conn:
        cid = await _live_customer(conn, customer_id)
        await conn.execute(
            """insert into preferences (tenant_id, customer_id, channels, language, quiet_start,
                                        quiet_end, timezone, updated_at)
               values ($1, $2, $3, $4, $5, $6, $7, now())
               on conflict (tenant_id, customer_id) do update
                 set channels = excluded.channels, language = excluded.language,
                     quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,
                     timezone = excluded.timezone, updated_at = now()""",
            ctx.tenant_id, cid, data.channels, data.language, quiet.start if quiet else None,
            quiet.end if quiet else None, data.timezone)
        subs = sorted(set(data.subscriptions), key=lambda s: (s.kind, s.ref))
        await conn.execute(
            """delete from transit_subscriptions where customer_id = $1
               and (kind, ref) not in (select * from unnest($2::text[], $3::text[]))""",
            cid, [s.kind for s in subs], [s.ref for s in subs])
        await conn.execute(
            """insert into transit_subscriptions (tenant_id, customer_id, kind, ref)
               select $1, $2, k, r from unnest($3::text[], $4::text[]) as u(k, r)
               on conflict do nothing""",
            ctx.tenant_id, cid, [s.kind for s in subs], [s.ref for s in subs])
        await record(conn, ctx, "preferences.updated", "customer", str(cid),
                     {"channels": data.channels, "subscriptions": len(subs)})
        return await fetch_preferences(conn, cid)  # type: ignore[return-value]
