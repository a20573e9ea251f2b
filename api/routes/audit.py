from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromQuery

from api.deps import Ctx, CursorParam, Db, LimitParam
from core.audit import service
from core.audit.schemas import AuditEntry
from core.pagination import DEFAULT_LIMIT, Page


class TenantAuditController(Controller):
    path = "/v1/tenants/{tenant:str}/audit"
    tags = ["tenant: audit"]

    @get("/", opt={"scope": "audit:read"}, summary="The tenant's audit log, newest first")
    async def list(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[AuditEntry]:
        return await service.list_tenant_entries(db, ctx, cursor=cursor, limit=limit)


class HqAuditController(Controller):
    path = "/v1/hq/audit"
    tags = ["hq: audit"]
    opt = {"hq": True}

    @get("/", opt={"scope": "audit:read"}, summary="HQ actions, newest first")
    async def list(self, db: Db, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT,
                   tenant_id: FromQuery[str | None] = None) -> Page[AuditEntry]:
        return await service.list_hq_entries(db, cursor=cursor, limit=limit,
                                             tenant_id=tenant_id)
