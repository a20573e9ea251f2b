"""Nightly clean-up of dead OAuth credentials: a cron fans out one job per tenant."""

from __future__ import annotations

from datetime import date

from core.jobs.context import JobContext, enqueue
from core.oauth.store import purge_expired
from tenants.context import SYSTEM
from tenants.service import list_tenant_ids, tenant_context

# Expired or revoked credentials stay visible this long (grant lists, introspection answers
# "inactive" either way), then go.
KEEP_DAYS = 7


async def purge_oauth_credentials(ctx: JobContext, tenant_id: str) -> int:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    return await purge_expired(ctx["db"], tenant, keep_days=KEEP_DAYS)


async def schedule_oauth_purge(ctx: JobContext) -> int:
    today = date.today().isoformat()
    tenant_ids = await list_tenant_ids(ctx["db"], status=None)
    for tenant_id in tenant_ids:
        await enqueue(ctx["redis"], ctx["settings"], "purge_oauth_credentials",
                      tenant_id=tenant_id, key=today)
    return len(tenant_ids)
