"""Tenant segments: preview, local CRUD, global ones read-only, current members.

Local segments live in `segments` (tenant table), global ones in `hq_segments` (HQ-wide,
see `core.segments.hq`); a tenant lists and uses both, and edits only its own. Refresh and
materialised membership are in `core.segments.membership`.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from core.audit.service import record
from core.db import Connection, Database, fetch_first
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.lifecycle.model import stage_names_in
from core.pagination import Page, check_limit, decode_cursor, page_of
from core.segments import definition as d
from core.segments.compiler import Compiled, compile_definition
from core.segments.schemas import (
    Member,
    Preview,
    PreviewCustomer,
    PreviewRequest,
    Segment,
    SegmentCreate,
    SegmentUpdate,
)
from core.segments.validate import parse, referenced_segments, validate
from core.segments.vocabulary import Vocabulary, tenant_vocabulary
from tenants.context import TenantContext

GLOBAL_PREFIX, LOCAL_PREFIX = "gseg_", "seg_"
_COLUMNS = ("id, name, description, definition, refresh_minutes, status, created_at, "
            "updated_at")
# Segment queries aggregate millions of events: give their hashes room, and skip JIT, whose
# compile time (~1 s with inlining) exceeds what it saves here. Transaction-local.
WORK_MEM = "set local work_mem = '128MB'; set local jit = off"


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:16]


def segment_of(row: Any, scope: str, state: Any = None) -> Segment:
    return Segment(**{k: row[k] for k in ("id", "name", "description", "refresh_minutes",
                                          "status", "created_at", "updated_at")},
                   scope=scope, definition=d.decode(row["definition"]),  # type: ignore[arg-type]
                   member_count=state["member_count"] if state else None,
                   refreshed_at=state["refreshed_at"] if state else None)


# -- definitions: references, validation, compilation ----------------------------------

async def load_references(conn: Connection, node: d.Condition, *,
                          local: bool) -> dict[str, d.Condition]:
    """The active segments `node` refers to, transitively. Local segments may use local
    and global ones; global ones only global ones."""
    found: dict[str, d.Condition] = {}
    pending = referenced_segments(node)
    while pending:
        rows = await conn.fetch(
            f"""select id, definition from hq_segments where id = any($1::text[])
                  and status = 'active'
                {"union all select id, definition from segments where id = any($1::text[])"
                 " and status = 'active'" if local else ""}""", list(pending))
        for row in rows:
            found[row["id"]] = d.decode(row["definition"])
        pending = set().union(*(referenced_segments(found[r["id"]]) for r in rows)) \
            - set(found) if rows else set()
    return found


async def checked_definition(conn: Connection, ctx: TenantContext, raw: Any, *,
                             own_id: str | None = None, field: str = "definition"
                             ) -> tuple[d.Condition, Vocabulary, dict[str, d.Condition]]:
    vocab = await tenant_vocabulary(conn, ctx)
    vocab = vocab.with_stages(await stage_names_in(conn, ctx.tenant_id))
    node = parse(raw, None, field)
    refs = await load_references(conn, node, local=True)
    validate(node, vocab, segments=refs, path=field)
    if own_id is not None and own_id in refs:
        raise InvalidInput("a segment cannot include itself, directly or through others",
                           field=field)
    return node, vocab, refs


async def count_and_sample(conn: Connection, compiled: Compiled, sample_size: int
                           ) -> tuple[int, list[PreviewCustomer]]:
    """One evaluation: members are materialised once, counted, and the first
    `sample_size` (by id, i.e. pseudo-random) described."""
    await conn.execute(WORK_MEM)
    if sample_size == 0:
        sql, args = compiled.select("count(*)")
        return (await fetch_first(conn, sql, *args))[0], []
    inner, args = compiled.select("c.id")
    limit = compiled.bind(sample_size, "int")
    row = await fetch_first(
        conn, f"""with m as materialized ({inner})
            select (select count(*) from m) as total,
                   (select coalesce(json_agg(s order by s.id), '[]') from (
                        select c.id, c.first_name, c.last_name, c.email, c.stage
                        from customers c join (select id from m order by id limit {limit}) k
                        on k.id = c.id) s) as sample""", *args)
    return row["total"], msgspec.convert(row["sample"], list[PreviewCustomer])


async def preview(db: Database, ctx: TenantContext, data: PreviewRequest, *,
                  now: datetime | None = None) -> Preview:
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    async with db.tenant_tx(ctx) as conn:
        node, vocab, refs = await checked_definition(conn, ctx, data.definition)
        compiled = compile_definition(node, vocab, now, refs)
        count, sample = await count_and_sample(conn, compiled, data.sample_size)
    return Preview(count=count, sample=sample, evaluated_at=now,
                   duration_ms=round((time.perf_counter() - started) * 1000, 1))


# -- CRUD -----------------------------------------------------------------------------------

async def _state(conn: Connection, segment_id: str) -> Any:
    return await conn.fetchrow(
        "select member_count, refreshed_at from segment_states where segment_id = $1",
        segment_id)


async def fetch_segment(conn: Connection, segment_id: str) -> Segment:
    """A local segment of the transaction's tenant or a global one, else NotFound."""
    if segment_id.startswith(GLOBAL_PREFIX):
        row = await conn.fetchrow(f"select {_COLUMNS} from hq_segments where id = $1",
                                  segment_id)
        scope = "global"
    else:
        row = await conn.fetchrow(f"select {_COLUMNS} from segments where id = $1",
                                  segment_id)
        scope = "local"
    if row is None:
        raise NotFound(f"segment {segment_id!r} not found")
    return segment_of(row, scope, await _state(conn, segment_id))


async def get_segment(db: Database, ctx: TenantContext, segment_id: str) -> Segment:
    async with db.tenant_tx(ctx) as conn:
        return await fetch_segment(conn, segment_id)


async def create_segment(db: Database, ctx: TenantContext, data: SegmentCreate) -> Segment:
    segment_id = new_id(LOCAL_PREFIX)
    async with db.tenant_tx(ctx) as conn:
        node, _, _ = await checked_definition(conn, ctx, data.definition)
        try:
            await conn.execute(
                """insert into segments (tenant_id, id, name, description, definition,
                                         refresh_minutes, created_by)
                   values ($1, $2, $3, $4, $5, $6, $7)""",
                ctx.tenant_id, segment_id, data.name, data.description,
                msgspec.to_builtins(node), data.refresh_minutes, ctx.actor.label)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a segment named {data.name!r} exists", field="name") from None
        await record(conn, ctx, "segment.created", "segment", segment_id,
                     {"name": data.name})
        return await fetch_segment(conn, segment_id)


def _own(segment_id: str) -> None:
    if segment_id.startswith(GLOBAL_PREFIX):
        raise Forbidden("global segments are owned by HQ: tenants may use them, not edit "
                        "them", field="segment_id")


async def update_segment(db: Database, ctx: TenantContext, segment_id: str,
                         data: SegmentUpdate) -> Segment:
    async with db.tenant_tx(ctx) as conn:
        current = await fetch_segment(conn, segment_id)
        _own(segment_id)
        if current.status != "active":
            raise Conflict("an archived segment cannot change", field="segment_id")
        changes = {k: v for k, v in msgspec.structs.asdict(data).items()
                   if v is not msgspec.UNSET}
        if "definition" in changes:
            node, _, _ = await checked_definition(conn, ctx, changes["definition"],
                                                  own_id=segment_id)
            changes["definition"] = msgspec.to_builtins(node)
        if changes:
            sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(changes))
            try:
                await conn.execute(
                    f"update segments set {sets}, updated_at = now() where id = $1",
                    segment_id, *changes.values())
            except asyncpg.UniqueViolationError:
                raise Conflict(f"a segment named {changes['name']!r} exists",
                               field="name") from None
            await record(conn, ctx, "segment.updated", "segment", segment_id,
                         {"fields": sorted(changes)})
        return await fetch_segment(conn, segment_id)


async def archive_segment(db: Database, ctx: TenantContext, segment_id: str) -> Segment:
    """Archived: no more refreshes, current stints closed (without exit facts: the
    segment, not the customer, changed). Refused while another segment uses it."""
    async with db.tenant_tx(ctx) as conn:
        await fetch_segment(conn, segment_id)
        _own(segment_id)
        users = await conn.fetch(
            """select id from segments where status = 'active' and id <> $1 and
               jsonb_path_exists(definition, '$.** ? (@.segment_id == $id)',
                                 jsonb_build_object('id', $1::text))""", segment_id)
        if users:
            raise Conflict(f"segment is used by {', '.join(r['id'] for r in users)}",
                           field="segment_id")
        await conn.execute("update segments set status = 'archived', updated_at = now() "
                           "where id = $1", segment_id)
        await conn.execute("update segment_memberships set exited_at = now() "
                           "where segment_id = $1 and exited_at is null", segment_id)
        await record(conn, ctx, "segment.archived", "segment", segment_id)
        return await fetch_segment(conn, segment_id)


async def list_segments(db: Database, ctx: TenantContext, *, cursor: str | None, limit: int,
                        include_archived: bool = False) -> Page[Segment]:
    """Local and global segments together, by id (global ids sort first)."""
    check_limit(limit)
    after = decode_cursor(cursor, str) or ""
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select * from (
                  select {_COLUMNS}, 'global' as scope from hq_segments
                  union all select {_COLUMNS}, 'local' from segments) s
                left join (select segment_id, member_count, refreshed_at
                           from segment_states) st on st.segment_id = s.id
                where s.id > $1 and ($2 or s.status = 'active')
                order by s.id limit $3""", after, include_archived, limit + 1)
    items = [segment_of(r, r["scope"], r if r["refreshed_at"] is not None else None)
             for r in rows]
    return page_of(items, limit, lambda s: s.id)


async def list_members(db: Database, ctx: TenantContext, segment_id: str, *,
                       cursor: str | None, limit: int) -> Page[Member]:
    """Current members, as of the last refresh."""
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.tenant_tx(ctx) as conn:
        await fetch_segment(conn, segment_id)
        rows = await conn.fetch(
            """select customer_id, entered_at from segment_memberships
               where segment_id = $1 and exited_at is null
                 and ($2::uuid is null or customer_id > $2::uuid)
               order by customer_id limit $3""", segment_id, after, limit + 1)
    return page_of([Member(**dict(r)) for r in rows], limit, lambda m: str(m.customer_id))


async def is_member(conn: Connection, segment_id: str, customer_id: uuid.UUID) -> bool:
    """For campaigns and journeys, inside their own tenant transaction."""
    return bool(await conn.fetchval(
        """select true from segment_memberships where segment_id = $1 and customer_id = $2
           and exited_at is null""", segment_id, customer_id))
