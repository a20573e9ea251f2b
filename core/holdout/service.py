"""Universal holdout per tenant: deterministic buckets, one active group, archived history.

A customer's bucket is `relais_bucket(salt, customer_id)`: the first 8 bytes of
SHA-256(salt ":" id) as a signed 64-bit integer, floor-modulo 10,000. The SQL function
(migration m0701) and `bucket()` below are the same function, so the planner stays
set-based and the tests can predict it. Nothing is stored per customer: a new customer
falls into its bucket the moment it exists, and the same customer always lands in the same
bucket for a given salt. A reset draws a new salt; the old group is archived with its dates
(never mutated), so KPIs can still compare who was held out when.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

import asyncpg

from core.audit.service import record
from core.db import Connection, Database
from core.errors import InvalidInput, NotFound
from core.holdout.schemas import (
    HoldoutCreate,
    HoldoutGroup,
    HoldoutMember,
    HoldoutMembership,
    HoldoutOverview,
    HoldoutReset,
)
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import TenantContext

BUCKETS = 10_000
_COLUMNS = ("id::text, status, percent::float8 as percent, buckets, starts_at, ends_at, "
            "archived_at, created_at, created_by, notes")


def bucket(salt: str, subject: str) -> int:
    """Python twin of SQL `relais_bucket(salt, subject)`."""
    digest = hashlib.sha256(f"{salt}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True) % BUCKETS


def buckets_for(percent: float) -> int:
    return round(percent * BUCKETS / 100)


def add_months(at: datetime, months: int) -> datetime:
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    days = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31,
            30, 31, 31, 30, 31, 30, 31][month - 1]
    return at.replace(year=year, month=month, day=min(at.day, days))


def parse_customer_id(value: str, field: str = "customer_id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput("not a customer id (UUID)", field=field) from None


def _group(row: asyncpg.Record) -> HoldoutGroup:
    return HoldoutGroup(**dict(row))


async def active_group_in(conn: Connection) -> asyncpg.Record | None:
    """The tenant's active group row (salt included) inside a tenant transaction."""
    return await conn.fetchrow(
        "select id, salt, buckets, starts_at, ends_at from holdout_groups "
        "where status = 'active'")


async def _fetch_group(conn: Connection, group_id: str) -> HoldoutGroup:
    try:
        gid = uuid.UUID(group_id)
    except ValueError:
        raise NotFound(f"holdout group {group_id!r} not found") from None
    row = await conn.fetchrow(f"select {_COLUMNS} from holdout_groups where id = $1", gid)
    if row is None:
        raise NotFound(f"holdout group {group_id!r} not found")
    return _group(row)


def _in_effect(group: HoldoutGroup | None, now: datetime) -> bool:
    return group is not None and group.starts_at <= now < group.ends_at


async def overview(db: Database, ctx: TenantContext) -> HoldoutOverview:
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            f"select {_COLUMNS} from holdout_groups where status = 'active'")
    group = _group(row) if row else None
    return HoldoutOverview(active=group, in_effect=_in_effect(group, datetime.now(UTC)))


async def get_group(db: Database, ctx: TenantContext, group_id: str) -> HoldoutGroup:
    async with db.tenant_tx(ctx) as conn:
        return await _fetch_group(conn, group_id)


async def list_groups(db: Database, ctx: TenantContext, *, cursor: str | None,
                      limit: int) -> Page[HoldoutGroup]:
    check_limit(limit)
    after = decode_cursor(cursor, list[str])
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS} from holdout_groups
                where ($1::timestamptz is null or (created_at, id) < ($1, $2::uuid))
                order by created_at desc, id desc limit $3""",
            datetime.fromisoformat(after[0]) if after else None,
            after[1] if after else None, limit + 1)
    return page_of([_group(r) for r in rows], limit,
                   lambda g: [g.created_at.isoformat(), g.id])


async def _start_group(conn: Connection, ctx: TenantContext, percent: float,
                       starts_at: datetime, ends_at: datetime, notes: str,
                       action: str) -> HoldoutGroup:
    if ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at", field="ends_at")
    # One active group per tenant: the partial unique index would refuse a second one, and
    # the row lock makes two concurrent resets queue instead of failing.
    previous = await conn.fetchrow(
        "select id, starts_at from holdout_groups where status = 'active' for update")
    if previous is not None:
        await conn.execute(
            """update holdout_groups set status = 'archived', archived_at = now(),
                   ends_at = least(ends_at, greatest(starts_at, now()))
               where id = $1""", previous["id"])
    gid = uuid.uuid4()
    row = await conn.fetchrow(
        f"""insert into holdout_groups (tenant_id, id, salt, percent, buckets, starts_at,
                                        ends_at, status, created_by, notes)
            values ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9) returning {_COLUMNS}""",
        ctx.tenant_id, gid, secrets.token_hex(16), percent, buckets_for(percent), starts_at,
        ends_at, ctx.actor.label, notes)
    await record(conn, ctx, action, "holdout_group", str(gid),
                 {"percent": percent, "starts_at": starts_at.isoformat(),
                  "ends_at": ends_at.isoformat(),
                  "archived": str(previous["id"]) if previous else None})
    return _group(row)


async def create_group(db: Database, ctx: TenantContext, data: HoldoutCreate) -> HoldoutGroup:
    starts_at = data.starts_at or datetime.now(UTC)
    ends_at = data.ends_at or add_months(starts_at, data.months)
    async with db.tenant_tx(ctx) as conn:
        return await _start_group(conn, ctx, data.percent, starts_at, ends_at, data.notes,
                                  "holdout.created")


async def reset(db: Database, ctx: TenantContext, data: HoldoutReset) -> HoldoutGroup:
    async with db.tenant_tx(ctx) as conn:
        current = await conn.fetchrow(
            "select percent::float8 as percent, starts_at, ends_at from holdout_groups "
            "where status = 'active'")
        if current is None and data.percent is None:
            raise InvalidInput("no active holdout group to reset: give a percent",
                               field="percent")
        percent = data.percent if data.percent is not None else current["percent"]
        now = datetime.now(UTC)
        if data.months is not None or current is None:
            ends_at = add_months(now, data.months or 6)
        else:  # keep the active group's duration
            ends_at = now + (current["ends_at"] - current["starts_at"])
        return await _start_group(conn, ctx, percent, now, ends_at, data.notes,
                                  "holdout.reset")


async def _customer_exists(conn: Connection, customer_id: uuid.UUID) -> None:
    if not await conn.fetchval("select true from customers where id = $1", customer_id):
        raise NotFound(f"customer {customer_id} not found")


async def membership(db: Database, ctx: TenantContext, customer_id: str,
                     group_id: str | None = None) -> HoldoutMembership:
    cid = parse_customer_id(customer_id)
    async with db.tenant_tx(ctx) as conn:
        await _customer_exists(conn, cid)
        if group_id is None:
            row = await conn.fetchrow(
                "select id::text, salt, buckets, starts_at, ends_at from holdout_groups "
                "where status = 'active'")
            if row is None:
                raise NotFound("this tenant has no active holdout group")
        else:
            await _fetch_group(conn, group_id)
            row = await conn.fetchrow(
                "select id::text, salt, buckets, starts_at, ends_at from holdout_groups "
                "where id = $1::uuid", group_id)
        b = await conn.fetchval("select relais_bucket($1, $2)", row["salt"], str(cid))
    now = datetime.now(UTC)
    return HoldoutMembership(customer_id=str(cid), group_id=row["id"], bucket=b,
                             held_out=b < row["buckets"],
                             in_effect=b < row["buckets"]
                             and row["starts_at"] <= now < row["ends_at"])


async def members(db: Database, ctx: TenantContext, group_id: str, *, cursor: str | None,
                  limit: int) -> Page[HoldoutMember]:
    """Customers of a group (current or archived), in id order: what KPIs compare with
    the treated population. Computed, not stored, so it includes customers created since."""
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.tenant_tx(ctx) as conn:
        await _fetch_group(conn, group_id)
        rows = await conn.fetch(
            """select c.id::text as customer_id, relais_bucket(g.salt, c.id::text) as bucket
               from holdout_groups g
               join customers c on c.tenant_id = g.tenant_id
               where g.id = $1::uuid and c.merged_into is null
                 and ($2::uuid is null or c.id > $2::uuid)
                 and relais_bucket(g.salt, c.id::text) < g.buckets
               order by c.id limit $3""", group_id, after, limit + 1)
    return page_of([HoldoutMember(**dict(r)) for r in rows], limit,
                   lambda m: m.customer_id)
