"""Segment refreshes: on demand (API) and scheduled (a cron finds due segments)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.jobs.context import JobContext, enqueue
from core.segments.membership import due_segments, refresh_segment
from tenants.context import SYSTEM
from tenants.service import list_tenant_ids, tenant_context

SCHEDULE_EVERY_MINUTES = 5


async def refresh_segment_job(ctx: JobContext, tenant_id: str, segment_id: str) -> dict:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    result = await refresh_segment(ctx["db"], tenant, segment_id)
    return {"members": result.members, "entered": result.entered, "exited": result.exited}


async def schedule_segment_refreshes(ctx: JobContext) -> int:
    """Every few minutes: one refresh job per due segment per tenant. The job key is the
    time slot, so a slow refresh is never queued twice in the same slot."""
    now = datetime.now(UTC)
    slot = int(now.timestamp() // (SCHEDULE_EVERY_MINUTES * 60))
    tenant_ids = await list_tenant_ids(ctx["db"])

    async def due(conn, _tenant: str) -> list[str]:
        return await due_segments(conn, now)

    queued = 0
    for tenant_id, segment_ids in (await ctx["db"].for_each_tenant(tenant_ids, due)).items():
        for segment_id in segment_ids:
            job = await enqueue(ctx["redis"], ctx["settings"], "refresh_segment_job",
                                tenant_id=tenant_id, key=f"{segment_id}:{slot}",
                                segment_id=segment_id)
            queued += job is not None
    return queued
