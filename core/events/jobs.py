"""Background work of the customer-data spine: imports and large merges.

Each job takes `tenant_id` first, rebuilds the context and is idempotent; a cron sweep
re-queues work a dead worker left behind (arq refuses a job id already queued or running).
"""

from __future__ import annotations

import uuid

from arq import Retry

from core.events.imports import fail_import, process_import, stalled_imports
from core.events.reactions import Reactions
from core.identity.service import finish_repoint, pending_repoints
from core.jobs.context import JobContext, enqueue
from tenants.context import SYSTEM
from tenants.service import list_tenant_ids, tenant_context


async def run_import(ctx: JobContext, tenant_id: str, import_id: str) -> int:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    try:
        plugins = ctx.get("plugins")  # set by the worker's start-up
        reactions = None if plugins is None else Reactions(plugins, settings=ctx["settings"])
        return await process_import(ctx["db"], tenant, uuid.UUID(import_id), reactions)
    except Exception as err:
        # A transient error (database restart) is retried from the recorded progress; the
        # last try records the failure so the API shows it instead of "running" forever.
        if ctx.get("job_try", 1) < 3:
            raise Retry(defer=10 * ctx.get("job_try", 1)) from err
        await fail_import(ctx["db"], tenant, uuid.UUID(import_id), repr(err))
        raise


async def repoint_merged_events(ctx: JobContext, tenant_id: str, merge_id: int) -> int:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    return await finish_repoint(ctx["db"], tenant, merge_id)


async def sweep_customer_data(ctx: JobContext) -> int:
    queued = 0
    for tenant_id in await list_tenant_ids(ctx["db"], status=None):
        tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
        for import_id in await stalled_imports(ctx["db"], tenant):
            job = await enqueue(ctx["redis"], ctx["settings"], "run_import", tenant_id=tenant_id,
                                key=str(import_id), import_id=str(import_id))
            queued += job is not None
        for merge_id in await pending_repoints(ctx["db"], tenant):
            job = await enqueue(ctx["redis"], ctx["settings"], "repoint_merged_events",
                                tenant_id=tenant_id, key=str(merge_id), merge_id=merge_id)
            queued += job is not None
    return queued
