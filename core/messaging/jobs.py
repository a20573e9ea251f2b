"""arq jobs: dispatch one tenant's channel, and the minute cron that finds due work.

`dispatch_messages` is safe to run twice or concurrently (claims skip locked rows); it
stops after a time budget and re-enqueues itself while due messages remain. The cron
catches retries whose backoff ended, messages scheduled for later, and leases to recover.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.jobs.context import JobContext, enqueue
from core.messaging.dispatch import Dispatcher, DispatchReport, dispatch
from core.messaging.schemas import CHANNELS
from tenants.context import SYSTEM
from tenants.service import list_tenant_ids, tenant_context

TIME_BUDGET_S = 50.0


def dispatcher_of(ctx: JobContext) -> Dispatcher:
    return Dispatcher(db=ctx["db"], redis=ctx["redis"], settings=ctx["settings"],
                      plugins=ctx["plugins"])  # type: ignore[typeddict-item]


async def dispatch_messages(ctx: JobContext, tenant_id: str, channel: str) -> dict[str, Any]:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    report: DispatchReport = await dispatch(dispatcher_of(ctx), tenant, channel,
                                            time_budget=TIME_BUDGET_S)
    if report.more:
        second = int(datetime.now(UTC).timestamp())
        await enqueue(ctx["redis"], ctx["settings"], "dispatch_messages", tenant_id=tenant_id,
                      key=f"{channel}:{second}:more", channel=channel)
    return {"channel": channel, **{k: getattr(report, k) for k in report.__struct_fields__}}


_DUE = " union all ".join(
    f"""select '{c}' where exists (select 1 from messages where status = 'planned'
                                   and channel = '{c}' and scheduled_at <= now())
                        or exists (select 1 from messages where status = 'sending'
                                   and channel = '{c}' and lease_until < now())"""
    for c in CHANNELS)


async def schedule_dispatch(ctx: JobContext) -> int:
    """Every minute: one dispatch job per tenant and channel with due messages."""
    db = ctx["db"]
    tenant_ids = await list_tenant_ids(db)

    async def due(conn: Any, _tenant: str) -> list[str]:
        return [r[0] for r in await conn.fetch(_DUE)]

    found = await db.for_each_tenant(tenant_ids, due)
    minute = int(datetime.now(UTC).timestamp()) // 60
    jobs = 0
    for tenant_id, channels in found.items():
        for channel in channels:
            await enqueue(ctx["redis"], ctx["settings"], "dispatch_messages",
                          tenant_id=tenant_id, key=f"{channel}:cron:{minute}", channel=channel)
            jobs += 1
    return jobs
