"""Connector jobs: execute a run, and the per-minute scheduler of pull syncs.

The scheduler walks every active tenant (one short transaction each): pull connectors whose
`next_run_at` has come get a run and a job; runs whose worker stopped reporting for
`STALE_AFTER` (or whose job never started) are queued again and resume from their
checkpoint; webhook runs of past hours are closed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from core.connectors import runs
from core.connectors.sync import STALE_AFTER, Enqueue, execute_run
from core.jobs.context import JobContext
from core.plugin_config.secrets import SecretBox
from tenants.context import SYSTEM
from tenants.service import list_tenant_ids, tenant_context


async def run_connector(ctx: JobContext, tenant_id: str, run_id: str) -> bool:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    return await execute_run(ctx["db"], tenant, ctx["plugins"],  # type: ignore[typeddict-item]
                             SecretBox.from_settings(ctx["settings"]), ctx["settings"], run_id)


async def schedule_connector_syncs(ctx: JobContext, now: datetime | None = None) -> int:
    """Returns the number of jobs queued."""
    db, now = ctx["db"], now or datetime.now(UTC)
    enqueue = Enqueue(ctx["redis"], ctx["settings"])
    queued = 0
    for tenant_id in await list_tenant_ids(db, status="active"):
        tenant = await tenant_context(db, tenant_id, SYSTEM)
        jobs: list[tuple[str, str]] = []
        async with db.tenant_tx(tenant) as conn:
            await conn.execute(
                """update connector_runs set status = 'succeeded',
                          finished_at = coalesce(heartbeat_at, now())
                   where trigger = 'webhook' and status = 'running'
                     and created_at < date_trunc('hour', $1::timestamptz)""", now)
            for stale in await runs.stale_runs(conn, now - STALE_AFTER):
                jobs.append((stale["id"], f"{stale['attempts']}-{now:%Y%m%d%H%M}"))
            due = await conn.fetch(
                """select id, schedule_minutes from connectors
                   where status = 'active' and schedule_minutes is not null
                     and next_run_at <= $1 order by id for update skip locked""", now)
            for connector in due:
                if await runs.open_run(conn, connector["id"]) is None:
                    run = await runs.create_run(conn, tenant, connector["id"], "schedule",
                                                "scheduled sync")
                    jobs.append((run.id, ""))
                await conn.execute(
                    """update connectors set next_run_at = $2::timestamptz
                           + make_interval(mins => schedule_minutes) where id = $1""",
                    connector["id"], now)
        for run_id, retry in jobs:
            await enqueue(tenant_id, run_id, retry)
            queued += 1
    return queued
