"""Audit-log retention: a nightly cron fans out one job per tenant."""

from __future__ import annotations

from datetime import date

from core.audit.service import purge_tenant_entries
from core.jobs.context import JobContext, enqueue
from tenants.context import SYSTEM
from tenants.service import list_tenant_ids, tenant_context


async def purge_audit_log(ctx: JobContext, tenant_id: str) -> int:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    return await purge_tenant_entries(
        ctx["db"], tenant, older_than_days=ctx["settings"].audit_retention_days)


async def schedule_audit_retention(ctx: JobContext) -> int:
    today = date.today().isoformat()
    tenant_ids = await list_tenant_ids(ctx["db"], status=None)
    for tenant_id in tenant_ids:
        await enqueue(ctx["redis"], ctx["settings"], "purge_audit_log",
                      tenant_id=tenant_id, key=today)
    return len(tenant_ids)
