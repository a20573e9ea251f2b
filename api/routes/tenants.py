from __future__ import annotations

from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.deps import Ctx, CursorParam, Db, Hq, LimitParam
from core.pagination import DEFAULT_LIMIT, Page
from tenants import service
from tenants.schemas import Tenant, TenantCreate, TenantStatus, TenantUpdate


class HqTenantController(Controller):
    path = "/v1/hq/tenants"
    tags = ["hq: tenants"]
    opt = {"hq": True}

    @post("/", opt={"scope": "tenants:write"}, summary="Create a tenant")
    async def create(self, db: Db, hq: Hq, data: JSONBody[TenantCreate]) -> Tenant:
        return await service.create_tenant(db, hq, data)

    @get("/", opt={"scope": "tenants:read"}, summary="List tenants")
    async def list(self, db: Db, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT,
                   status: FromQuery[TenantStatus | None] = None) -> Page[Tenant]:
        return await service.list_tenants(db, cursor=cursor, limit=limit, status=status)

    @get("/{tenant_id:str}", opt={"scope": "tenants:read"}, summary="Get a tenant")
    async def get(self, db: Db, tenant_id: FromPath[str]) -> Tenant:
        return await service.get_tenant(db, tenant_id)

    @patch("/{tenant_id:str}", opt={"scope": "tenants:write"}, summary="Update a tenant")
    async def update(self, request: Request, db: Db, hq: Hq, tenant_id: FromPath[str],
                     data: JSONBody[TenantUpdate]) -> Tenant:
        updated = await service.update_tenant(db, hq, tenant_id, data)
        request.app.state.access_cache.forget_tenant(tenant_id)
        return updated

    @post("/{tenant_id:str}/suspend", opt={"scope": "tenants:write"}, status_code=200,
          summary="Suspend a tenant: its keys stop working")
    async def suspend(self, request: Request, db: Db, hq: Hq,
                      tenant_id: FromPath[str]) -> Tenant:
        suspended = await service.set_status(db, hq, tenant_id, "suspended")
        request.app.state.access_cache.forget_tenant(tenant_id)
        return suspended

    @post("/{tenant_id:str}/reactivate", opt={"scope": "tenants:write"}, status_code=200,
          summary="Reactivate a suspended tenant")
    async def reactivate(self, request: Request, db: Db, hq: Hq,
                         tenant_id: FromPath[str]) -> Tenant:
        reactivated = await service.set_status(db, hq, tenant_id, "active")
        request.app.state.access_cache.forget_tenant(tenant_id)
        return reactivated


class TenantSelfController(Controller):
    path = "/v1/tenants/{tenant:str}"
    tags = ["tenant"]

    @get("/", opt={"scope": "tenants:read"}, summary="The tenant itself")
    async def get(self, db: Db, ctx: Ctx) -> Tenant:
        return await service.get_tenant(db, ctx.tenant_id)
