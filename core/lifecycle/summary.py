"""Projection: customers per stage and per segment, for a tenant and rolled up for HQ.

HQ's roll-up reads each tenant through `Database.for_each_tenant` (RLS scoped to that
tenant) and only ever brings back counts.
"""

from __future__ import annotations

from core.db import Connection, Database
from core.lifecycle.model import KIND, stage_model
from core.lifecycle.schemas import (
    HqSummary,
    HqTenantSummary,
    SegmentCount,
    StageCount,
    StageRun,
    TenantSummary,
)
from tenants.context import TenantContext
from tenants.overlay import effective_in, running_version
from tenants.service import list_tenant_ids

UNASSIGNED = "unassigned"
_SEGMENTS = """
    select st.segment_id, s.name, s.scope, st.member_count as members, st.refreshed_at
    from segment_states st join (
        select id, name, 'global' as scope from hq_segments where status = 'active'
        union all select id, name, 'local' from segments where status = 'active') s
      on s.id = st.segment_id
    where $1 or s.scope = 'global'
    order by s.scope, s.name"""


async def _stage_counts(conn: Connection, tenant_id: str) -> tuple[int, list[StageCount]]:
    """Counts in the order of the canvas the tenant runs; stages of an older version still
    held by someone come after, customers never evaluated last."""
    order = stage_model(await effective_in(conn, tenant_id, KIND)).names
    rows = await conn.fetch(
        """select stage, count(*) as n from customers
           where merged_into is null and erased_at is null group by stage""")
    counts = {r["stage"] or UNASSIGNED: r["n"] for r in rows}
    names = order + sorted(set(counts) - set(order) - {UNASSIGNED}) + [UNASSIGNED]
    return sum(counts.values()), [StageCount(n, counts.get(n, 0)) for n in names]


async def tenant_summary(db: Database, ctx: TenantContext) -> TenantSummary:
    async with db.tenant_tx(ctx) as conn:
        version, pilot = await running_version(conn, KIND, ctx.tenant_id)
        customers, stages = await _stage_counts(conn, ctx.tenant_id)
        segments = [SegmentCount(**dict(r)) for r in await conn.fetch(_SEGMENTS, True)]
        run = await conn.fetchrow(
            """select id, mode, canvas_version, status, started_at, finished_at, evaluated,
                      changed, error from lifecycle_runs order by id desc limit 1""")
    return TenantSummary(tenant_id=ctx.tenant_id, canvas_version=version, pilot=pilot,
                         customers=customers, stages=stages, segments=segments,
                         last_run=StageRun(**dict(run)) if run else None)


async def hq_summary(db: Database) -> HqSummary:
    async def one(conn: Connection, tenant_id: str) -> HqTenantSummary:
        version, pilot = await running_version(conn, KIND, tenant_id)
        customers, stages = await _stage_counts(conn, tenant_id)
        segments = [SegmentCount(**dict(r)) for r in await conn.fetch(_SEGMENTS, False)]
        return HqTenantSummary(tenant_id=tenant_id, canvas_version=version, pilot=pilot,
                               customers=customers, stages=stages, global_segments=segments)

    per_tenant = await db.for_each_tenant(await list_tenant_ids(db), one)
    stage_totals: dict[str, int] = {}
    segment_totals: dict[str, SegmentCount] = {}
    for summary in per_tenant.values():
        for s in summary.stages:
            stage_totals[s.stage] = stage_totals.get(s.stage, 0) + s.count
        for g in summary.global_segments:
            total = segment_totals.setdefault(
                g.segment_id, SegmentCount(g.segment_id, g.name, "global", 0, None))
            total.members += g.members
            if g.refreshed_at and (total.refreshed_at is None
                                   or g.refreshed_at < total.refreshed_at):
                total.refreshed_at = g.refreshed_at  # the oldest refresh across tenants
    return HqSummary(
        customers=sum(t.customers for t in per_tenant.values()),
        stages=[StageCount(k, v) for k, v in stage_totals.items()],
        global_segments=sorted(segment_totals.values(), key=lambda s: s.name),
        tenants=list(per_tenant.values()))
