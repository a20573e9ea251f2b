"""The 360° view: profile by id or identifier, timeline, service notes.

A profile merged into another answers with its survivor, so ids held by other systems
keep working after a merge.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from core.audit.service import record
from core.consents.schemas import Consent
from core.consents.service import (
    CONSENT_COLS,
    PREFERENCE_COLS,
    SUBSCRIPTION_COLS,
    preferences_of,
)
from core.customers.schemas import Customer, Customer360, Identifier, Note, NoteCreate, TimelineItem
from core.db import Connection, Database
from core.errors import InvalidInput, NotFound
from core.identity.normalise import IDENTIFIER_KINDS, InvalidIdentifier, normalise_identifier
from core.identity.survivorship import PROFILE_COLUMNS
from core.messaging.service import TIMELINE_BRANCH as MESSAGE_BRANCH  # contact history (#6)
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import TenantContext

CUSTOMER_COLUMNS = (f"id, {', '.join(PROFILE_COLUMNS)}, stage, attributes, created_at, "
                    "updated_at, merged_into, erased_at")
_PROFILE_FIELDS = [c.strip() for c in CUSTOMER_COLUMNS.split(",")]


async def require_customer(conn: Connection, customer_id: uuid.UUID, *,
                           follow_merges: bool = True) -> asyncpg.Record:
    """The profile row (the survivor's when `follow_merges`); NotFound for a missing or
    another tenant's id (RLS hides those rows, so both look the same)."""
    row = await conn.fetchrow(f"select {CUSTOMER_COLUMNS} from customers where id = $1",
                              customer_id)
    if row is not None and follow_merges and row["merged_into"] is not None:
        row = await conn.fetchrow(f"select {CUSTOMER_COLUMNS} from customers where id = $1",
                                  row["merged_into"])
    if row is None:
        raise NotFound("no customer with this id")
    return row


def to_customer(row: asyncpg.Record) -> Customer:
    return Customer(**dict(row))


_IDENTIFIER_COLS = "kind, value, status, source, first_seen, last_seen"


def _prefixed(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


# The whole 360° view in one statement (the most frequent read of the API: one round trip
# instead of six). Related rows come back as arrays of anonymous records, read by position
# in the order of the *_COLS lists. A merged id answers with its survivor, as
# `require_customer` does (a second statement, for merged ids only: computing the
# survivor's id inside the statement made PostgreSQL scan the tenant's profiles instead of
# probing the primary key).
_VIEW_SQL = f"""
    select {_prefixed(CUSTOMER_COLUMNS, 'c')},
        array(select row({_prefixed(_IDENTIFIER_COLS, 'i')}) from identifiers i
              where i.customer_id = c.id order by i.kind, i.value) as identifiers,
        array(select m.id from customers m where m.merged_into = c.id
              order by m.id) as merged_ids,
        array(select row({_prefixed(CONSENT_COLS, 'k')}) from consents k
              where k.customer_id = c.id order by k.channel, k.purpose) as consents,
        (select row({_prefixed(PREFERENCE_COLS, 'p')}) from preferences p
         where p.customer_id = c.id) as preferences,
        array(select row({_prefixed(SUBSCRIPTION_COLS, 's')}) from transit_subscriptions s
              where s.customer_id = c.id order by s.kind, s.ref) as subscriptions
    from customers c where c.id = $1"""
_IDENTIFIER_FIELDS = [c.strip() for c in _IDENTIFIER_COLS.split(",")]
_CONSENT_FIELDS = [c.strip() for c in CONSENT_COLS.split(",")]


async def get_customer(db: Database, ctx: TenantContext, customer_id: uuid.UUID) -> Customer360:
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(_VIEW_SQL, customer_id)
        if row is not None and row["merged_into"] is not None:
            row = await conn.fetchrow(_VIEW_SQL, row["merged_into"])
    if row is None:
        raise NotFound("no customer with this id")
    profile = Customer(**{k: row[k] for k in _PROFILE_FIELDS})
    return Customer360(
        profile=profile, stage=profile.stage, merged_ids=list(row["merged_ids"]),
        identifiers=[Identifier(**dict(zip(_IDENTIFIER_FIELDS, r, strict=True)))
                     for r in row["identifiers"]],
        consents=[Consent(**dict(zip(_CONSENT_FIELDS, r, strict=True)))
                  for r in row["consents"]],
        preferences=preferences_of(row["preferences"], row["subscriptions"]))


def _identifier_filter(tenant_country: str, email: str | None, phone: str | None,
                       identifier: str | None) -> tuple[str, str] | None:
    given = [(k, v, f) for k, v, f in (("email", email, "email"), ("phone", phone, "phone"))
             if v is not None]
    if identifier is not None:
        kind, sep, value = identifier.partition(":")
        if not sep or kind not in IDENTIFIER_KINDS:
            raise InvalidInput(f"write kind:value with kind one of {sorted(IDENTIFIER_KINDS)}",
                               field="identifier")
        given.append((kind, value, "identifier"))
    if len(given) > 1:
        raise InvalidInput("look up by one identifier at a time", field=given[1][2])
    if not given:
        return None
    kind, value, field = given[0]
    try:
        return kind, normalise_identifier(kind, value, tenant_country)
    except InvalidIdentifier as err:
        raise InvalidInput(err.detail, field=field) from None


async def find_customers(db: Database, ctx: TenantContext, *, email: str | None = None,
                         phone: str | None = None, identifier: str | None = None,
                         cursor: str | None = None, limit: int = 50) -> Page[Customer]:
    """By one identifier (0 or 1 profile), or every live profile by id."""
    check_limit(limit)
    key = _identifier_filter(ctx.country, email, phone, identifier)
    async with db.tenant_tx(ctx) as conn:
        if key is not None:
            rows = await conn.fetch(
                f"""select {CUSTOMER_COLUMNS} from customers where id in
                    (select customer_id from identifiers where kind = $1 and value = $2)""",
                *key)
            return Page(items=[to_customer(r) for r in rows])
        after = decode_cursor(cursor, uuid.UUID)
        rows = await conn.fetch(
            f"""select {CUSTOMER_COLUMNS} from customers
                where merged_into is null and ($1::uuid is null or id > $1)
                order by id limit $2""", after, limit + 1)
    return page_of([to_customer(r) for r in rows], limit, lambda c: str(c.id))


# -- timeline -----------------------------------------------------------------------------

# One branch per source, same columns. The `messages` table of the channels issue joins as
# one more branch (kind 'message') without touching the others.
_TIMELINE_BRANCHES = {
    "event": """select 'event'::text as kind, occurred_at as at, id::text as ref,
                       type as summary,
                       jsonb_build_object('message_id', message_id, 'type', type,
                                          'properties', properties, 'source', source,
                                          'customer_id', customer_id,
                                          'received_at', received_at) as data
                from events where customer_id = any($1::uuid[])""",
    "note": """select 'note'::text as kind, created_at as at, id::text as ref,
                      channel || ': ' || left(text, 80) as summary,
                      jsonb_build_object('author', author, 'channel', channel, 'text', text)
                          as data
               from customer_notes where customer_id = any($1::uuid[])""",
    "merge": """select 'merge'::text as kind, merged_at as at, id::text as ref,
                       'profiles merged' as summary,
                       jsonb_build_object('survivor_id', survivor_id, 'merged_id', merged_id,
                                          'reason', reason, 'details', details) as data
                from customer_merges
                where survivor_id = any($1::uuid[]) or merged_id = any($1::uuid[])""",
}
_TIMELINE_BRANCHES["message"] = MESSAGE_BRANCH  # the messages table (issue #6)


async def timeline(db: Database, ctx: TenantContext, customer_id: uuid.UUID, *,
                   cursor: str | None, limit: int,
                   kinds: list[str] | None = None) -> Page[TimelineItem]:
    check_limit(limit)
    after = decode_cursor(cursor, tuple[datetime, str, str])
    unknown = set(kinds or ()) - set(_TIMELINE_BRANCHES)
    if unknown:
        raise InvalidInput(f"unknown timeline kinds {sorted(unknown)}", field="kind")
    branches = [sql for kind, sql in _TIMELINE_BRANCHES.items() if not kinds or kind in kinds]
    # Each branch is ordered and limited on its own, so only limit+1 rows per source are
    # read before the merge sort of the union.
    limited = [f"""(select * from ({sql}) b
                    where $2::timestamptz is null or (b.at, b.kind, b.ref) < ($2, $3, $4)
                    order by at desc, kind desc, ref desc limit $5)""" for sql in branches]
    async with db.tenant_tx(ctx) as conn:
        row = await require_customer(conn, customer_id)
        ids = [row["id"], *[r["id"] for r in await conn.fetch(
            "select id from customers where merged_into = $1", row["id"])]]
        rows = await conn.fetch(
            f"""select kind, at, ref, summary, data from ({" union all ".join(limited)}) t
                order by at desc, kind desc, ref desc limit $5""",
            ids, *(after or (None, None, None)), limit + 1)
    items = [TimelineItem(**dict(r)) for r in rows]
    return page_of(items, limit, lambda t: (t.at, t.kind, t.ref))


# -- notes --------------------------------------------------------------------------------


async def add_note(db: Database, ctx: TenantContext, customer_id: uuid.UUID,
                   data: NoteCreate) -> Note:
    async with db.tenant_tx(ctx) as conn:
        row = await require_customer(conn, customer_id)
        if row["erased_at"] is not None:
            raise InvalidInput("this customer was erased (GDPR)", field="customer_id")
        note = await conn.fetchrow(
            """insert into customer_notes (tenant_id, customer_id, author, channel, text)
               values ($1, $2, $3, $4, $5)
               returning id, customer_id, author, channel, text, created_at""",
            ctx.tenant_id, row["id"], data.author, data.channel, data.text)
        await record(conn, ctx, "customer.note_added", "customer", str(row["id"]),
                     {"note_id": note["id"], "channel": data.channel})
    return Note(**dict(note))


async def list_notes(db: Database, ctx: TenantContext, customer_id: uuid.UUID, *,
                     cursor: str | None, limit: int) -> Page[Note]:
    check_limit(limit)
    after = decode_cursor(cursor, int)
    async with db.tenant_tx(ctx) as conn:
        row = await require_customer(conn, customer_id)
        rows = await conn.fetch(
            """select id, customer_id, author, channel, text, created_at from customer_notes
               where customer_id = $1 and ($2::bigint is null or id < $2)
               order by id desc limit $3""", row["id"], after, limit + 1)
    return page_of([Note(**dict(r)) for r in rows], limit, lambda n: n.id)
