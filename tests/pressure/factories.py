"""Pressure policies for tests: a version published by HQ and piloted on one tenant only,
so other tenants of the session keep the current (built-in) policy."""

from __future__ import annotations

from core.db import Database
from core.pressure.policy import KIND, builtin
from core.pressure.schemas import CapRuleDefinition, PressurePolicyDefinition
from tenants.context import HqContext
from tenants.overlay import VersionCreate, create_version
from tenants.rollout import PilotRequest, start_pilot

HQ = HqContext()


async def ensure_current(db: Database) -> None:
    """The first version HQ publishes becomes current for every tenant: make it the
    built-in one, so publishing test versions changes nothing for other tenants."""
    async with db.hq_tx() as conn:
        exists = await conn.fetchval("select true from overlay_rollouts where kind = $1", KIND)
    if not exists:
        await create_version(db, HQ, KIND, builtin())


async def use_policy(db: Database, tenant_id: str, rules: list[CapRuleDefinition], *,
                     quiet: tuple[int, int] = (0, 0), quiet_action: str = "delay",
                     alert_bypass: bool = True, exemption: bool = False) -> int:
    await ensure_current(db)
    version = await create_version(db, HQ, KIND, VersionCreate(
        definition=PressurePolicyDefinition(
            rules=rules, quiet_start=quiet[0], quiet_end=quiet[1],
            quiet_hours_action=quiet_action,  # type: ignore[arg-type]
            alert_bypass_quiet_hours=alert_bypass, campaign_exemption_allowed=exemption),
        notes="test"))
    await start_pilot(db, HQ, KIND, version.version, PilotRequest(tenants=[tenant_id]))
    return version.version


def rule(id: str, max: int, window: str = "day", **extra) -> CapRuleDefinition:
    return CapRuleDefinition(id=id, max=max, window=window, **extra)  # type: ignore[arg-type]
