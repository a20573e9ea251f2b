from __future__ import annotations

from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.deps import Ctx, CursorParam, Db, Hq, LimitParam
from core.campaigns import funnel, lifecycle, packages, planner, service
from core.campaigns.schemas import (
    Adoption,
    Campaign,
    CampaignCreate,
    CampaignUpdate,
    Funnel,
    Package,
    PackageCreate,
    PackageUpdate,
    Recipient,
    Status,
)
from core.pagination import DEFAULT_LIMIT, Page


class TenantCampaignController(Controller):
    path = "/v1/tenants/{tenant:str}/campaigns"
    tags = ["tenant: campaigns"]

    @post("/", opt={"scope": "campaigns:write"}, summary="Create a draft campaign")
    async def create(self, db: Db, ctx: Ctx, data: JSONBody[CampaignCreate]) -> Campaign:
        return await service.create_campaign(db, ctx, data)

    @get("/", opt={"scope": "campaigns:read"}, summary="List campaigns (newest first)")
    async def list_all(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT,
                   status: FromQuery[Status | None] = None) -> Page[Campaign]:
        return await service.list_campaigns(db, ctx, cursor=cursor, limit=limit, status=status)

    @post("/adopt", opt={"scope": "campaigns:write"},
          summary="Adopt an HQ campaign package as a draft, adapting what it leaves open")
    async def adopt(self, db: Db, ctx: Ctx, data: JSONBody[Adoption]) -> Campaign:
        return await packages.adopt(db, ctx, data)

    @get("/{campaign_id:str}", opt={"scope": "campaigns:read"},
         summary="A campaign, with its planning progress")
    async def get_one(self, db: Db, ctx: Ctx, campaign_id: FromPath[str]) -> Campaign:
        return await service.get_campaign(db, ctx, campaign_id)

    @patch("/{campaign_id:str}", opt={"scope": "campaigns:write"}, summary="Edit a draft")
    async def update(self, db: Db, ctx: Ctx, campaign_id: FromPath[str],
                     data: JSONBody[CampaignUpdate]) -> Campaign:
        return await service.update_campaign(db, ctx, campaign_id, data)

    @post("/{campaign_id:str}/schedule", opt={"scope": "campaigns:write"}, status_code=200,
          summary="draft → scheduled (planning starts up to 24 h before the first send)")
    async def schedule(self, request: Request, db: Db, ctx: Ctx,
                       campaign_id: FromPath[str]) -> Campaign:
        state = request.app.state
        return await lifecycle.schedule(db, state.arq, state.settings, ctx, campaign_id)

    @post("/{campaign_id:str}/unschedule", opt={"scope": "campaigns:write"}, status_code=200,
          summary="scheduled → draft")
    async def unschedule(self, db: Db, ctx: Ctx, campaign_id: FromPath[str]) -> Campaign:
        return await lifecycle.unschedule(db, ctx, campaign_id)

    @post("/{campaign_id:str}/cancel", opt={"scope": "campaigns:write"}, status_code=200,
          summary="Cancel; messages not yet sent are skipped")
    async def cancel(self, db: Db, ctx: Ctx, campaign_id: FromPath[str]) -> Campaign:
        return await lifecycle.cancel(db, ctx, campaign_id)

    @post("/{campaign_id:str}/simulate", opt={"scope": "campaigns:read"}, status_code=200,
          summary="The audience funnel the campaign would have now, without sending")
    async def simulate(self, db: Db, ctx: Ctx, campaign_id: FromPath[str]) -> Funnel:
        return await planner.simulate(db, ctx, campaign_id)

    @get("/{campaign_id:str}/funnel", opt={"scope": "campaigns:read"},
         summary="Counts per funnel step and reason of the planned campaign")
    async def get_funnel(self, db: Db, ctx: Ctx, campaign_id: FromPath[str]) -> Funnel:
        return await funnel.funnel(db, ctx, campaign_id)

    @get("/{campaign_id:str}/recipients", opt={"scope": "campaigns:read"},
         summary="Each recipient's decision (filter by step and reason)")
    async def recipients(self, db: Db, ctx: Ctx, campaign_id: FromPath[str],
                         cursor: CursorParam = None, limit: LimitParam = DEFAULT_LIMIT,
                         step: FromQuery[str | None] = None,
                         reason: FromQuery[str | None] = None) -> Page[Recipient]:
        return await funnel.recipients(db, ctx, campaign_id, cursor=cursor, limit=limit,
                                       step=step, reason=reason)

    @get("/{campaign_id:str}/recipients/{customer_id:str}", opt={"scope": "campaigns:read"},
         summary="Why one customer was (or was not) sent this campaign")
    async def recipient(self, db: Db, ctx: Ctx, campaign_id: FromPath[str],
                        customer_id: FromPath[str]) -> Recipient:
        return await funnel.recipient(db, ctx, campaign_id, customer_id)


class TenantCampaignPackageController(Controller):
    path = "/v1/tenants/{tenant:str}/campaign-packages"
    tags = ["tenant: campaigns"]

    @get("/", opt={"scope": "campaigns:read"}, summary="HQ campaign packages to adopt")
    async def list_all(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[Package]:
        return await packages.list_packages(db, cursor=cursor, limit=limit,
                                            published_only=True)


class HqCampaignPackageController(Controller):
    path = "/v1/hq/campaign-packages"
    tags = ["hq: campaigns"]
    opt = {"hq": True}

    @post("/", opt={"scope": "campaigns:write"}, summary="Publish a campaign package")
    async def create(self, db: Db, hq: Hq, data: JSONBody[PackageCreate]) -> Package:
        return await packages.create_package(db, hq, data)

    @get("/", opt={"scope": "campaigns:read"}, summary="List campaign packages")
    async def list_all(self, db: Db, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[Package]:
        return await packages.list_packages(db, cursor=cursor, limit=limit)

    @get("/{package_id:str}", opt={"scope": "campaigns:read"}, summary="A campaign package")
    async def get_one(self, db: Db, package_id: FromPath[str]) -> Package:
        return await packages.get_package(db, package_id)

    @patch("/{package_id:str}", opt={"scope": "campaigns:write"},
           summary="Update (new revision) or archive a package")
    async def update(self, db: Db, hq: Hq, package_id: FromPath[str],
                     data: JSONBody[PackageUpdate]) -> Package:
        return await packages.update_package(db, hq, package_id, data)
