from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody

from api.deps import Ctx, CursorParam, Db, Hq, LimitParam
from core.auth import service
from core.auth.schemas import ApiKey, ApiKeyCreate, CreatedApiKey
from core.pagination import DEFAULT_LIMIT, Page


class TenantKeyController(Controller):
    path = "/v1/tenants/{tenant:str}/keys"
    tags = ["tenant: keys"]

    @post("/", opt={"scope": "admin"}, summary="Create a tenant API key (secret shown once)")
    async def create(self, db: Db, ctx: Ctx, data: JSONBody[ApiKeyCreate]) -> CreatedApiKey:
        return await service.create_tenant_key(db, ctx, data)

    @get("/", opt={"scope": "admin"}, summary="List the tenant's API keys")
    async def list(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[ApiKey]:
        return await service.list_tenant_keys(db, ctx, cursor=cursor, limit=limit)

    @delete("/{key_id:str}", opt={"scope": "admin"}, status_code=200, summary="Revoke a key")
    async def revoke(self, request: Request, db: Db, ctx: Ctx, key_id: FromPath[str]) -> ApiKey:
        revoked = await service.revoke_tenant_key(db, ctx, key_id)
        request.app.state.access_cache.forget_key(key_id)
        return revoked


class HqKeyController(Controller):
    path = "/v1/hq/keys"
    tags = ["hq: keys"]
    opt = {"hq": True}

    @post("/", opt={"scope": "admin"}, summary="Create an HQ API key (secret shown once)")
    async def create(self, db: Db, hq: Hq, data: JSONBody[ApiKeyCreate]) -> CreatedApiKey:
        return await service.create_hq_key(db, hq, data)

    @get("/", opt={"scope": "admin"}, summary="List HQ API keys")
    async def list(self, db: Db, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[ApiKey]:
        return await service.list_hq_keys(db, cursor=cursor, limit=limit)

    @delete("/{key_id:str}", opt={"scope": "admin"}, status_code=200, summary="Revoke a key")
    async def revoke(self, request: Request, db: Db, hq: Hq, key_id: FromPath[str]) -> ApiKey:
        revoked = await service.revoke_hq_key(db, hq, key_id)
        request.app.state.access_cache.forget_key(key_id)
        return revoked
