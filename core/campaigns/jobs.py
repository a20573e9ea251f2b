"""arq jobs driving campaign planning.

`plan_campaign` starts a campaign (audience snapshot) and enqueues one `plan_campaign_batch`
per pending batch; each batch job decides its batch and, when it was the last, closes the
plan and kicks dispatch for a send that is due now. Every job takes `tenant_id` first and
is idempotent (a decided batch is never decided again), so arq retries and the minute
`campaigns_tick` re-enqueueing a stalled plan are safe.
"""

from __future__ import annotations

from datetime import UTC, datetime

from arq import Retry

from core.campaigns import lifecycle, planner
from core.campaigns.service import get_campaign
from core.jobs.context import JobContext, enqueue
from core.messaging.service import kick_dispatch
from tenants.context import SYSTEM
from tenants.service import list_tenant_ids, tenant_context

MAX_TRIES = 3


async def plan_campaign(ctx: JobContext, tenant_id: str, campaign_id: str) -> int:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    try:
        batches = await planner.start(ctx["db"], tenant, campaign_id)
    except Exception as err:
        if ctx.get("job_try", 1) < MAX_TRIES:
            raise Retry(defer=5 * ctx.get("job_try", 1)) from err
        await planner.record_error(ctx["db"], tenant, campaign_id, repr(err))
        raise
    for batch in batches:
        await enqueue(ctx["redis"], ctx["settings"], "plan_campaign_batch",
                      tenant_id=tenant_id, key=f"{campaign_id}:{batch}:{ctx.get('job_id')}",
                      campaign_id=campaign_id, batch=batch)
    if not batches:
        await _after_plan(ctx, tenant_id, campaign_id)
    return len(batches)


async def plan_campaign_batch(ctx: JobContext, tenant_id: str, campaign_id: str,
                              batch: int) -> list[int] | None:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    try:
        result = await planner.plan_batch(ctx["db"], tenant, campaign_id, batch)
    except Exception as err:
        # Deadlock or restart: the batch rolled back whole; decide it again.
        if ctx.get("job_try", 1) < MAX_TRIES:
            raise Retry(defer=5 * ctx.get("job_try", 1)) from err
        await planner.record_error(ctx["db"], tenant, campaign_id,
                                   f"batch {batch}: {err!r}")
        raise
    await _after_plan(ctx, tenant_id, campaign_id)
    return list(result) if result else None


async def _after_plan(ctx: JobContext, tenant_id: str, campaign_id: str) -> None:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    if await planner.finish_if_done(ctx["db"], tenant, campaign_id):
        campaign = await get_campaign(ctx["db"], tenant, campaign_id)
        if campaign.send_at and campaign.send_at <= datetime.now(UTC):
            await kick_dispatch(ctx["redis"], ctx["settings"], tenant_id, campaign.channels)


async def campaigns_tick(ctx: JobContext) -> dict[str, int]:
    """Every minute: start campaigns due for planning, restart stalled plans, complete
    campaigns whose sends are all past."""
    totals = {"started": 0, "restarted": 0, "completed": 0}
    for tenant_id in await list_tenant_ids(ctx["db"]):
        tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
        counts = await lifecycle.tick(ctx["db"], ctx["redis"], ctx["settings"], tenant)
        for key, value in counts.items():
            totals[key] += value
    return totals
