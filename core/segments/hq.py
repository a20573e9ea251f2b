"""Global segments: HQ defines them once (`hq_segments`), every tenant has them, each
evaluates them on its own data. HQ sees aggregates only (counts per tenant)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from core.audit.service import record_hq
from core.db import Connection, Database, fetch_first
from core.errors import Conflict, InvalidInput, NotFound
from core.lifecycle.model import global_stage_names
from core.pagination import Page, check_limit, decode_cursor, page_of
from core.segments import definition as d
from core.segments.compiler import compile_definition
from core.segments.schemas import (
    HqPreview,
    PreviewRequest,
    Segment,
    SegmentCreate,
    SegmentUpdate,
    TenantCount,
)
from core.segments.service import (
    _COLUMNS,
    GLOBAL_PREFIX,
    WORK_MEM,
    load_references,
    new_id,
    segment_of,
)
from core.segments.validate import parse, validate
from core.segments.vocabulary import Vocabulary, hq_vocabulary
from tenants.context import HqContext
from tenants.service import list_tenant_ids


async def _checked(db: Database, conn: Connection, raw: Any, own_id: str | None = None
                   ) -> tuple[d.Condition, Vocabulary, dict[str, d.Condition]]:
    """Global definitions may only use the HQ core dictionary and catalog, stages some
    tenant runs, and other global segments."""
    vocab = (await hq_vocabulary(db)).with_stages(await global_stage_names(conn))
    node = parse(raw, None, "definition")
    refs = await load_references(conn, node, local=False)
    validate(node, vocab, segments=refs)
    if own_id is not None and own_id in refs:
        raise InvalidInput("a segment cannot include itself, directly or through others",
                           field="definition")
    return node, vocab, refs


async def _fetch(conn: Connection, segment_id: str) -> Segment:
    row = await conn.fetchrow(f"select {_COLUMNS} from hq_segments where id = $1",
                              segment_id)
    if row is None:
        raise NotFound(f"global segment {segment_id!r} not found")
    return segment_of(row, "global")


async def get_global(db: Database, segment_id: str) -> Segment:
    async with db.hq_tx() as conn:
        return await _fetch(conn, segment_id)


async def list_global(db: Database, *, cursor: str | None, limit: int,
                      include_archived: bool = False) -> Page[Segment]:
    check_limit(limit)
    after = decode_cursor(cursor, str) or ""
    async with db.hq_tx() as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS} from hq_segments where id > $1 and ($2 or status = 'active')
                order by id limit $3""", after, include_archived, limit + 1)
    return page_of([segment_of(r, "global") for r in rows], limit, lambda s: s.id)


async def create_global(db: Database, hq: HqContext, data: SegmentCreate) -> Segment:
    segment_id = new_id(GLOBAL_PREFIX)
    async with db.hq_tx() as conn:
        node, _, _ = await _checked(db, conn, data.definition)
        try:
            await conn.execute(
                """insert into hq_segments (id, name, description, definition,
                                            refresh_minutes, created_by)
                   values ($1, $2, $3, $4, $5, $6)""",
                segment_id, data.name, data.description, msgspec.to_builtins(node),
                data.refresh_minutes, hq.actor.label)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a global segment named {data.name!r} exists",
                           field="name") from None
        await record_hq(conn, hq, "segment.created", "segment", segment_id, {"name": data.name})
        return await _fetch(conn, segment_id)


async def update_global(db: Database, hq: HqContext, segment_id: str,
                        data: SegmentUpdate) -> Segment:
    async with db.hq_tx() as conn:
        current = await _fetch(conn, segment_id)
        if current.status != "active":
            raise Conflict("an archived segment cannot change", field="segment_id")
        changes = {k: v for k, v in msgspec.structs.asdict(data).items()
                   if v is not msgspec.UNSET}
        if "definition" in changes:
            node, _, _ = await _checked(db, conn, changes["definition"], own_id=segment_id)
            changes["definition"] = msgspec.to_builtins(node)
        if changes:
            sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(changes))
            try:
                await conn.execute(
                    f"update hq_segments set {sets}, updated_at = now() where id = $1",
                    segment_id, *changes.values())
            except asyncpg.UniqueViolationError:
                raise Conflict(f"a global segment named {changes['name']!r} exists",
                               field="name") from None
            await record_hq(conn, hq, "segment.updated", "segment", segment_id,
                            {"fields": sorted(changes)})
        return await _fetch(conn, segment_id)


async def archive_global(db: Database, hq: HqContext, segment_id: str) -> Segment:
    """Refused while a tenant's or another global segment uses it. Memberships stay as
    they were at the last refresh (no more refreshes)."""
    uses = """select count(*) from {table} where status = 'active' and id <> $1 and
              jsonb_path_exists(definition, '$.** ? (@.segment_id == $id)',
                                jsonb_build_object('id', $1::text))"""
    async with db.hq_tx() as conn:
        await _fetch(conn, segment_id)
        if await conn.fetchval(uses.format(table="hq_segments"), segment_id):
            raise Conflict("segment is used by another global segment", field="segment_id")
    tenants = await list_tenant_ids(db, status=None)
    counts = await db.for_each_tenant(
        tenants, lambda c, _t: c.fetchval(uses.format(table="segments"), segment_id))
    if any(counts.values()):
        users = sorted(t for t, n in counts.items() if n)
        raise Conflict(f"segment is used by segments of tenants {', '.join(users)}",
                       field="segment_id")
    async with db.hq_tx() as conn:
        await conn.execute("update hq_segments set status = 'archived', updated_at = now() "
                           "where id = $1", segment_id)
        await record_hq(conn, hq, "segment.archived", "segment", segment_id)
        return await _fetch(conn, segment_id)


async def preview_global(db: Database, data: PreviewRequest, *,
                         tenant_ids: list[str] | None = None,
                         now: datetime | None = None) -> HqPreview:
    """Count members in every tenant (or those given) through the HQ path: one compiled
    query run in each tenant's RLS scope; only counts come back (no sample)."""
    now = now or datetime.now(UTC)
    async with db.hq_tx() as conn:
        node, vocab, refs = await _checked(db, conn, data.definition)
    compiled = compile_definition(node, vocab, now, refs)
    sql, args = compiled.select("count(*)")

    async def count(conn: Connection, _tenant: str) -> int:
        await conn.execute(WORK_MEM)
        return (await fetch_first(conn, sql, *args))[0]

    tenants = tenant_ids if tenant_ids is not None else await list_tenant_ids(db)
    counts = await db.for_each_tenant(tenants, count)
    return HqPreview(total=sum(counts.values()),
                     tenants=[TenantCount(t, n) for t, n in counts.items()], evaluated_at=now)
