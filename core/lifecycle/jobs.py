"""Lifecycle evaluation jobs: nightly full runs, frequent incremental runs, on demand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from core.jobs.context import JobContext, enqueue
from core.lifecycle.service import Notify, evaluate
from core.plugin_config.secrets import SecretBox
from core.plugin_config.service import enabled_configs
from plugins.types import StageChange
from tenants.context import SYSTEM, TenantContext
from tenants.service import list_tenant_ids, tenant_context

INCREMENTAL_EVERY_MINUTES = 10


def _plugin_notifier(ctx: JobContext, tenant: TenantContext) -> Notify | None:
    """The plugin hook `stage changed`, for the plugins this tenant enabled."""
    plugins = ctx.get("plugins")  # type: ignore[call-overload]
    if plugins is None:
        return None
    db = ctx["db"]

    async def notify(changes: Sequence[StageChange]) -> None:
        async with db.tenant_tx(tenant) as conn:
            enabled = await enabled_configs(conn, tenant, plugins,
                                            SecretBox.from_settings(ctx["settings"]))
        await plugins.stage_changed(tenant.tenant_id, changes, list(enabled))

    return notify


async def evaluate_lifecycle(ctx: JobContext, tenant_id: str, mode: str = "full") -> dict:
    tenant = await tenant_context(ctx["db"], tenant_id, SYSTEM)
    run = await evaluate(ctx["db"], tenant, mode=mode,  # type: ignore[arg-type]
                         notify=_plugin_notifier(ctx, tenant))
    return {"run": run.id, "evaluated": run.evaluated, "changed": run.changed}


async def _fan_out(ctx: JobContext, mode: str, key: str) -> int:
    tenant_ids = await list_tenant_ids(ctx["db"])
    for tenant_id in tenant_ids:
        await enqueue(ctx["redis"], ctx["settings"], "evaluate_lifecycle",
                      tenant_id=tenant_id, key=f"{mode}:{key}", mode=mode)
    return len(tenant_ids)


async def schedule_lifecycle_nightly(ctx: JobContext) -> int:
    return await _fan_out(ctx, "full", datetime.now(UTC).date().isoformat())


async def schedule_lifecycle_incremental(ctx: JobContext) -> int:
    slot = int(datetime.now(UTC).timestamp() // (INCREMENTAL_EVERY_MINUTES * 60))
    return await _fan_out(ctx, "incremental", str(slot))
