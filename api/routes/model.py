from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.params import JSONBody

from api.deps import Ctx, CursorParam, Db, Hq, LimitParam
from core.identity import service as identity
from core.identity.rules import IdentityOverlay, IdentityRules
from core.model import service
from core.model.schemas import (
    DataSettings,
    DataSettingsUpdate,
    EventType,
    EventTypeCreate,
    FieldCreate,
    FieldDef,
    HqModel,
    HqModelUpdate,
    TenantModel,
)
from core.pagination import DEFAULT_LIMIT, Page


class HqModelController(Controller):
    path = "/v1/hq"
    tags = ["hq: data model"]
    opt = {"hq": True}

    @get("/model", opt={"scope": "model:read"},
         summary="The core data dictionary and the core tracking plan")
    async def get_model(self, db: Db) -> HqModel:
        return await service.get_hq_model(db)

    @put("/model", opt={"scope": "model:write"},
         summary="Replace core fields and/or core event types (builtin columns stay)")
    async def put_model(self, db: Db, hq: Hq, data: JSONBody[HqModelUpdate]) -> HqModel:
        return await service.put_hq_model(db, hq, data)

    @get("/identity-rules", opt={"scope": "model:read"},
         summary="The HQ default identity rule set")
    async def get_rules(self, db: Db) -> IdentityRules:
        return await identity.get_hq_rules(db)

    @put("/identity-rules", opt={"scope": "model:write"},
         summary="Replace the HQ default identity rule set")
    async def put_rules(self, db: Db, hq: Hq, data: JSONBody[IdentityRules]) -> IdentityRules:
        return await identity.put_hq_rules(db, hq, data)


class TenantModelController(Controller):
    path = "/v1/tenants/{tenant:str}"
    tags = ["tenant: data model"]

    @get("/model", opt={"scope": "model:read"},
         summary="The effective model: core + tenant fields and event types, policies")
    async def get_model(self, db: Db, ctx: Ctx) -> TenantModel:
        return await service.get_tenant_model(db, ctx)

    @get("/model/fields", opt={"scope": "model:read"}, summary="Core and tenant fields")
    async def list_fields(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                          limit: LimitParam = DEFAULT_LIMIT) -> Page[FieldDef]:
        return await service.list_fields(db, ctx, cursor=cursor, limit=limit)

    @post("/model/fields", opt={"scope": "model:write"},
          summary="Add a tenant extension field (never a core name)")
    async def add_field(self, db: Db, ctx: Ctx, data: JSONBody[FieldCreate]) -> FieldDef:
        return await service.add_field(db, ctx, data)

    @get("/model/event-types", opt={"scope": "model:read"},
         summary="The tracking plan: core and local event types")
    async def list_event_types(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                               limit: LimitParam = DEFAULT_LIMIT) -> Page[EventType]:
        return await service.list_event_types(db, ctx, cursor=cursor, limit=limit)

    @post("/model/event-types", opt={"scope": "model:write"}, summary="Add a local event type")
    async def add_event_type(self, db: Db, ctx: Ctx,
                             data: JSONBody[EventTypeCreate]) -> EventType:
        return await service.add_event_type(db, ctx, data)

    @get("/model/settings", opt={"scope": "model:read"},
         summary="Ingestion policies: unknown events, invalid properties, strict traits")
    async def get_settings(self, db: Db, ctx: Ctx) -> DataSettings:
        return await service.get_settings(db, ctx)

    @put("/model/settings", opt={"scope": "model:write"}, summary="Change ingestion policies")
    async def put_settings(self, db: Db, ctx: Ctx,
                           data: JSONBody[DataSettingsUpdate]) -> DataSettings:
        return await service.update_settings(db, ctx, data)

    @get("/identity-rules", opt={"scope": "model:read"},
         summary="Identity rules: HQ default, this tenant's overlay, the effective set")
    async def get_rules(self, db: Db, ctx: Ctx) -> identity.IdentityRulesView:
        return await identity.get_tenant_rules(db, ctx)

    @put("/identity-rules", opt={"scope": "model:write"},
         summary="Replace this tenant's identity overlay (within HQ governance)")
    async def put_rules(self, db: Db, ctx: Ctx,
                        data: JSONBody[IdentityOverlay]) -> identity.IdentityRulesView:
        return await identity.put_tenant_overlay(db, ctx, data)
