"""The arq worker: job registry, start-up/shutdown, cron schedule."""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker

from core.audit.jobs import purge_audit_log, schedule_audit_retention
from core.campaigns.jobs import campaigns_tick, plan_campaign, plan_campaign_batch
from core.connectors.jobs import run_connector, schedule_connector_syncs
from core.db import Database
from core.events.jobs import repoint_merged_events, run_import, sweep_customer_data
from core.jobs.context import JobContext
from core.lifecycle.jobs import (
    evaluate_lifecycle,
    schedule_lifecycle_incremental,
    schedule_lifecycle_nightly,
)
from core.messaging.jobs import dispatch_messages, schedule_dispatch
from core.oauth.jobs import purge_oauth_credentials, schedule_oauth_purge
from core.segments.jobs import refresh_segment_job, schedule_segment_refreshes
from core.settings import Settings
from plugins.manager import load_plugins

FUNCTIONS: list[Any] = [
    purge_audit_log, schedule_audit_retention,
    purge_oauth_credentials, schedule_oauth_purge,
    run_import, repoint_merged_events, sweep_customer_data,
    run_connector, schedule_connector_syncs,
    refresh_segment_job, schedule_segment_refreshes,
    evaluate_lifecycle, schedule_lifecycle_nightly, schedule_lifecycle_incremental,
    dispatch_messages, schedule_dispatch,
    plan_campaign, plan_campaign_batch, campaigns_tick,
]
_EVERY_5_MINUTES = set(range(0, 60, 5))
CRON_JOBS = [
    cron(schedule_audit_retention, hour={3}, minute={15}, unique=True),
    cron(schedule_oauth_purge, hour={3}, minute={45}, unique=True),
    cron(sweep_customer_data, minute=_EVERY_5_MINUTES, unique=True),  # stalled imports/merges
    cron(schedule_connector_syncs, unique=True),  # pull connectors, every minute
    cron(schedule_segment_refreshes, minute=_EVERY_5_MINUTES, unique=True),
    cron(schedule_lifecycle_nightly, hour={2}, minute={30}, unique=True),
    cron(schedule_lifecycle_incremental, minute=set(range(2, 60, 10)), unique=True),
    cron(schedule_dispatch, unique=True),  # due messages, every minute
    cron(campaigns_tick, unique=True),  # campaigns: start, resume, complete
]


def build_worker(settings: Settings, *, burst: bool = False, **overrides: Any) -> Worker:
    async def startup(ctx: JobContext) -> None:
        ctx["settings"] = settings
        ctx["db"] = await Database.connect(settings)
        ctx["plugins"] = load_plugins()  # type: ignore[typeddict-unknown-key]  # plugin manager

    async def shutdown(ctx: JobContext) -> None:
        if "db" in ctx:
            await ctx["db"].close()

    options: dict[str, Any] = {
        "functions": FUNCTIONS,
        "cron_jobs": CRON_JOBS,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.queue_name,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "burst": burst,
        "max_jobs": 10,
        "job_timeout": 3600,
        "keep_result": 3600,
        "handle_signals": not burst,
    } | overrides
    return Worker(**options)
