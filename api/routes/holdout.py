from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.deps import Ctx, CursorParam, Db, LimitParam
from core.holdout import service
from core.holdout.schemas import (
    HoldoutCreate,
    HoldoutGroup,
    HoldoutMember,
    HoldoutMembership,
    HoldoutOverview,
    HoldoutReset,
)
from core.pagination import DEFAULT_LIMIT, Page


class TenantHoldoutController(Controller):
    path = "/v1/tenants/{tenant:str}/holdout"
    tags = ["tenant: holdout"]

    @get("/", opt={"scope": "campaigns:read"}, summary="The active universal holdout group")
    async def overview(self, db: Db, ctx: Ctx) -> HoldoutOverview:
        return await service.overview(db, ctx)

    @post("/groups", opt={"scope": "campaigns:write"},
          summary="Start a holdout group (the active one, if any, is archived)")
    async def create(self, db: Db, ctx: Ctx, data: JSONBody[HoldoutCreate]) -> HoldoutGroup:
        return await service.create_group(db, ctx, data)

    @post("/reset", opt={"scope": "campaigns:write"}, status_code=200,
          summary="New salt, new group; the old one is archived with its dates")
    async def reset(self, db: Db, ctx: Ctx, data: JSONBody[HoldoutReset]) -> HoldoutGroup:
        return await service.reset(db, ctx, data)

    @get("/groups", opt={"scope": "campaigns:read"},
         summary="Every holdout group, active and archived (newest first)")
    async def list_all(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[HoldoutGroup]:
        return await service.list_groups(db, ctx, cursor=cursor, limit=limit)

    @get("/groups/{holdout_id:str}", opt={"scope": "campaigns:read"},
         summary="A holdout group")
    async def get_one(self, db: Db, ctx: Ctx, holdout_id: FromPath[str]) -> HoldoutGroup:
        return await service.get_group(db, ctx, holdout_id)

    @get("/groups/{holdout_id:str}/members", opt={"scope": "campaigns:read"},
         summary="Customers held out by a group (computed: new customers included)")
    async def members(self, db: Db, ctx: Ctx, holdout_id: FromPath[str],
                      cursor: CursorParam = None,
                      limit: LimitParam = DEFAULT_LIMIT) -> Page[HoldoutMember]:
        return await service.members(db, ctx, holdout_id, cursor=cursor, limit=limit)

    @get("/customers/{customer_id:str}", opt={"scope": "campaigns:read"},
         summary="A customer's bucket and whether the group holds it out")
    async def customer(self, db: Db, ctx: Ctx, customer_id: FromPath[str],
                       group: FromQuery[str | None] = None) -> HoldoutMembership:
        return await service.membership(db, ctx, customer_id, group)
