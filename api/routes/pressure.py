"""Pressure policy routes: the overlay mechanism's standard routes for kind
`pressure_policy` (HQ versions / rollout, tenant effective / overlay), plus the resolved
policy, a customer's usage and the cap audit."""

from __future__ import annotations

from datetime import datetime

from litestar import Controller, get
from litestar.params import FromPath, FromQuery

from api.deps import Ctx, Db
from api.routes.overlays import overlay_controllers
from core.pressure import service
from core.pressure.policy import PRESSURE_POLICY
from core.pressure.schemas import CustomerPressure, PressureAudit, PressurePolicy

HqPressurePolicyController, TenantPressurePolicyController = overlay_controllers(
    PRESSURE_POLICY.name, "pressure", "campaigns")


class TenantPressureController(Controller):
    path = "/v1/tenants/{tenant:str}/pressure"
    tags = ["tenant: pressure"]

    @get("/policy", opt={"scope": "campaigns:read"},
         summary="The pressure policy in force: enabled cap rules, quiet hours, exemptions")
    async def policy(self, db: Db, ctx: Ctx) -> PressurePolicy:
        return await service.get_policy(db, ctx)

    @get("/customers/{customer_id:str}", opt={"scope": "campaigns:read"},
         summary="What each cap rule counts for a customer in the period around `at`")
    async def customer(self, db: Db, ctx: Ctx, customer_id: FromPath[str],
                       at: FromQuery[datetime | None] = None) -> CustomerPressure:
        return await service.customer_pressure(db, ctx, customer_id, at)

    @get("/audit", opt={"scope": "campaigns:read"},
         summary="Periods over a cap in the contact history (first 100; should be none)")
    async def audit(self, db: Db, ctx: Ctx,
                    source_id: FromQuery[str | None] = None) -> PressureAudit:
        return await service.audit_tenant(db, ctx, source_id=source_id)
