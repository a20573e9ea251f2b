"""The collection plan of a tenant, and its HQ roll-up (aggregates only)."""

from __future__ import annotations

from litestar import Controller, get

from api.deps import Ctx, Db
from core.collection_plan import service
from core.collection_plan.schemas import CollectionPlan, HqCollectionPlan


class TenantCollectionPlanController(Controller):
    path = "/v1/tenants/{tenant:str}/collection-plan"
    tags = ["tenant: collection plan"]

    @get("/", opt={"scope": "model:read"},
         summary="Every field, identifier kind, event type and consent: sources, fill rate, "
                 "last received; what the canvas needs that nothing feeds")
    async def read(self, db: Db, ctx: Ctx) -> CollectionPlan:
        return await service.get_tenant_plan(db, ctx)


class HqCollectionPlanController(Controller):
    path = "/v1/hq/collection-plan"
    tags = ["hq: collection plan"]
    opt = {"hq": True}

    @get("/", opt={"scope": "model:read"},
         summary="The collection plan rolled up across tenants (aggregates only)")
    async def read(self, db: Db) -> HqCollectionPlan:
        return await service.get_hq_plan(db)
