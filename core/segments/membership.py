"""Materialised membership: refresh a segment in one tenant, record entries and exits.

A refresh: the compiled definition gives the current members (one SELECT), then one
statement closes the stints of customers no longer in it, opens new ones, and records each
change as a `segment_entered` / `segment_exited` event in the events table, where journeys
react to facts. It is idempotent: a second run with the same data changes nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from core.db import Connection, Database
from core.errors import Conflict
from core.lifecycle.model import stage_names_in
from core.segments.compiler import compile_definition
from core.segments.facts import insert_facts
from core.segments.schemas import RefreshResult
from core.segments.service import WORK_MEM, fetch_segment, load_references
from core.segments.validate import validate
from core.segments.vocabulary import tenant_vocabulary
from tenants.context import TenantContext


async def refresh_in(conn: Connection, ctx: TenantContext, segment_id: str,
                     now: datetime) -> RefreshResult:
    started = time.perf_counter()
    # One refresh of a segment at a time per tenant; others wait, then see its result.
    await conn.execute("select pg_advisory_xact_lock(hashtext('segment:' || $1 || ':' || $2))",
                       ctx.tenant_id, segment_id)
    segment = await fetch_segment(conn, segment_id)
    if segment.status != "active":
        raise Conflict(f"segment {segment_id!r} is archived", field="segment_id")
    vocab = (await tenant_vocabulary(conn, ctx)).with_stages(
        await stage_names_in(conn, ctx.tenant_id))
    refs = await load_references(conn, segment.definition,
                                 local=not segment_id.startswith("gseg_"))
    # The dictionary may have changed since the segment was saved.
    validate(segment.definition, vocab, segments=refs)
    compiled = compile_definition(segment.definition, vocab, now, refs)
    members_sql, args = compiled.select("c.id as customer_id")
    await conn.execute(WORK_MEM)
    # A query that writes to a table never runs in parallel, but CREATE TABLE AS may: the
    # members go to a temporary table, then the differences are written in one statement.
    await conn.execute(f"create temp table segment_current on commit drop as {members_sql}",
                       *args)
    await conn.execute("analyze segment_current")
    members = await conn.fetchval("select count(*) from segment_current")
    row = await conn.fetchrow(
        f"""with gone as (
                update segment_memberships m set exited_at = $2
                where m.segment_id = $1 and m.exited_at is null
                  and not exists (select 1 from segment_current cur
                                  where cur.customer_id = m.customer_id)
                returning m.customer_id),
            came as (
                insert into segment_memberships (tenant_id, segment_id, customer_id,
                                                 entered_at)
                select current_setting('relais.tenant_id'), $1, cur.customer_id, $2
                from segment_current cur where not exists (
                    select 1 from segment_memberships m where m.segment_id = $1
                      and m.customer_id = cur.customer_id and m.exited_at is null)
                returning customer_id),
            left_facts as ({insert_facts("gone", "segment_exited", "$1::text", "$2::timestamptz")}),
            came_facts as ({insert_facts("came", "segment_entered", "$1::text", "$2::timestamptz")})
            select (select count(*) from came) as came, (select count(*) from gone) as gone""",
        segment_id, now)
    duration = round((time.perf_counter() - started) * 1000, 1)
    await conn.execute(
        """insert into segment_states (tenant_id, segment_id, member_count, refreshed_at,
                                       duration_ms)
           values (current_setting('relais.tenant_id'), $1, $2, $3, $4)
           on conflict (tenant_id, segment_id) do update
           set member_count = excluded.member_count, refreshed_at = excluded.refreshed_at,
               duration_ms = excluded.duration_ms""",
        segment_id, members, now, int(duration))
    return RefreshResult(segment_id=segment_id, members=members, entered=row["came"],
                         exited=row["gone"], refreshed_at=now, duration_ms=duration)


async def refresh_segment(db: Database, ctx: TenantContext, segment_id: str, *,
                          now: datetime | None = None) -> RefreshResult:
    async with db.tenant_tx(ctx) as conn:
        return await refresh_in(conn, ctx, segment_id, now or datetime.now(UTC))


async def refresh_key(db: Database, ctx: TenantContext, segment_id: str) -> str:
    """Job key of an on-demand refresh: one per refresh generation, so repeated clicks
    before the refresh ran share one job, and a click after it starts a new one."""
    async with db.tenant_tx(ctx) as conn:
        await fetch_segment(conn, segment_id)
        refreshed = await conn.fetchval(
            "select refreshed_at from segment_states where segment_id = $1", segment_id)
    return f"{segment_id}:{refreshed.timestamp() if refreshed else 'never'}"


async def due_segments(conn: Connection, now: datetime) -> list[str]:
    """Active segments (local and global) of the transaction's tenant whose scheduled
    refresh is due."""
    rows = await conn.fetch(
        """select s.id from (select id, refresh_minutes from hq_segments
                             where status = 'active' and refresh_minutes is not null
                             union all
                             select id, refresh_minutes from segments
                             where status = 'active' and refresh_minutes is not null) s
           left join segment_states st on st.segment_id = s.id
           where st.refreshed_at is null
              or st.refreshed_at + make_interval(mins => s.refresh_minutes) <= $1
           order by s.id""", now)
    return [r["id"] for r in rows]
