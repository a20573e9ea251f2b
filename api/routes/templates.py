from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter

from api.deps import Ctx, CursorParam, Db, Hq, LimitParam
from core.pagination import DEFAULT_LIMIT, Page
from core.templates import preview, service, variants
from core.templates.schemas import (
    Content,
    Decision,
    HqPreviewRequest,
    HqTemplate,
    HqTemplateCreate,
    HqTemplateUpdate,
    Partial,
    PartialPut,
    Preview,
    PreviewRequest,
    TemplateSettings,
    TemplateSettingsPut,
    TenantTemplate,
    Variant,
    VariantCreate,
    VariantUpdate,
)


def _base_url(request: Request) -> str:
    return request.app.state.settings.base_url


class HqTemplateController(Controller):
    path = "/v1/hq/templates"
    tags = ["hq: templates"]
    opt = {"hq": True}

    @post("/", opt={"scope": "templates:write"}, summary="Publish a master template")
    async def create(self, db: Db, hq: Hq, data: JSONBody[HqTemplateCreate]) -> HqTemplate:
        return await service.create_template(db, hq, data)

    @get("/", opt={"scope": "templates:read"}, summary="List master templates")
    async def list(self, db: Db, cursor: CursorParam = None, limit: LimitParam = DEFAULT_LIMIT,
                   channel: FromQuery[str | None] = None) -> Page[HqTemplate]:
        return await service.list_templates(db, cursor=cursor, limit=limit, channel=channel)

    @get("/{template_id:str}", opt={"scope": "templates:read"}, summary="A master template")
    async def show(self, db: Db, template_id: FromPath[str]) -> HqTemplate:
        return await service.get_template(db, template_id)

    @patch("/{template_id:str}", opt={"scope": "templates:write"},
           summary="Change governance, layouts, pilots, archive (partial update)")
    async def update(self, db: Db, hq: Hq, template_id: FromPath[str],
                     data: JSONBody[HqTemplateUpdate]) -> HqTemplate:
        return await service.update_template(db, hq, template_id, data)

    @put("/{template_id:str}/contents/{locale:str}", opt={"scope": "templates:write"},
         summary="Write one locale (bumps the revision)")
    async def put_content(self, db: Db, hq: Hq, template_id: FromPath[str],
                          locale: FromPath[str], data: JSONBody[Content]) -> HqTemplate:
        return await service.put_content(db, hq, template_id, locale, data)

    @delete("/{template_id:str}/contents/{locale:str}", opt={"scope": "templates:write"},
            status_code=200, summary="Remove one locale")
    async def delete_content(self, db: Db, hq: Hq, template_id: FromPath[str],
                             locale: FromPath[str]) -> HqTemplate:
        return await service.delete_content(db, hq, template_id, locale)

    @post("/{template_id:str}/preview", opt={"scope": "templates:read"}, status_code=200,
          summary="Render with sample data")
    async def preview(self, request: Request, db: Db, template_id: FromPath[str],
                      data: JSONBody[HqPreviewRequest]) -> Preview:
        return await preview.preview_for_hq(db, template_id, data, base_url=_base_url(request))


# The name is the partial's key and must match its check constraint (a 400 naming `name`,
# not a constraint violation as a 500).
PartialPath = Annotated[str, PathParameter(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]


class HqPartialController(Controller):
    path = "/v1/hq/template-partials"
    tags = ["hq: templates"]
    opt = {"hq": True}

    @put("/{name:str}", opt={"scope": "templates:write"},
         summary="Create or replace a shared layout/partial")
    async def put(self, db: Db, hq: Hq, name: PartialPath,
                  data: JSONBody[PartialPut]) -> Partial:
        return await service.put_partial(db, hq, name, data)

    @get("/", opt={"scope": "templates:read"}, summary="List shared layouts and partials")
    async def list(self, db: Db, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[Partial]:
        return await service.list_partials(db, cursor=cursor, limit=limit)

    @get("/{name:str}", opt={"scope": "templates:read"}, summary="A shared layout/partial")
    async def get(self, db: Db, name: FromPath[str]) -> Partial:
        return await service.get_partial(db, name)


class TenantTemplateController(Controller):
    path = "/v1/tenants/{tenant:str}/templates"
    tags = ["tenant: templates"]

    @get("/", opt={"scope": "templates:read"},
         summary="HQ templates available to the tenant and what it runs per locale")
    async def list(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT,
                   channel: FromQuery[str | None] = None) -> Page[TenantTemplate]:
        return await variants.list_tenant_templates(db, ctx, cursor=cursor, limit=limit,
                                                    channel=channel)

    @get("/{template_id:str}", opt={"scope": "templates:read"}, summary="One template")
    async def show(self, db: Db, ctx: Ctx, template_id: FromPath[str]) -> TenantTemplate:
        return await variants.get_tenant_template(db, ctx, template_id)

    @post("/{template_id:str}/preview", opt={"scope": "templates:read"}, status_code=200,
          summary="Render for a customer or sample data")
    async def preview(self, request: Request, db: Db, ctx: Ctx, template_id: FromPath[str],
                      data: JSONBody[PreviewRequest]) -> Preview:
        return await preview.preview_for_tenant(db, ctx, template_id, data,
                                                base_url=_base_url(request))

    @post("/{template_id:str}/variants", opt={"scope": "templates:write"},
          summary="Start a variant or translation (draft)")
    async def create_variant(self, db: Db, ctx: Ctx, template_id: FromPath[str],
                             data: JSONBody[VariantCreate]) -> Variant:
        return await variants.create_variant(db, ctx, template_id, data)

    @get("/{template_id:str}/variants", opt={"scope": "templates:read"},
         summary="The tenant's variants of a template, newest first")
    async def list_variants(self, db: Db, ctx: Ctx, template_id: FromPath[str],
                            cursor: CursorParam = None,
                            limit: LimitParam = DEFAULT_LIMIT) -> Page[Variant]:
        return await variants.list_variants(db, ctx, template_id, cursor=cursor, limit=limit)

    @get("/{template_id:str}/variants/{variant_id:uuid}", opt={"scope": "templates:read"},
         summary="One variant, with the problems a submission would refuse")
    async def get_variant(self, db: Db, ctx: Ctx, template_id: FromPath[str],
                          variant_id: FromPath[UUID]) -> Variant:
        return await variants.get_variant(db, ctx, template_id, variant_id)

    @patch("/{template_id:str}/variants/{variant_id:uuid}", opt={"scope": "templates:write"},
           summary="Edit a draft")
    async def update_variant(self, db: Db, ctx: Ctx, template_id: FromPath[str],
                             variant_id: FromPath[UUID],
                             data: JSONBody[VariantUpdate]) -> Variant:
        return await variants.update_variant(db, ctx, template_id, variant_id, data)

    @post("/{template_id:str}/variants/{variant_id:uuid}/submit",
          opt={"scope": "templates:write"}, status_code=200, summary="Submit a draft")
    async def submit(self, db: Db, ctx: Ctx, template_id: FromPath[str],
                     variant_id: FromPath[UUID]) -> Variant:
        return await variants.submit_variant(db, ctx, template_id, variant_id)

    @post("/{template_id:str}/variants/{variant_id:uuid}/approve", opt={"scope": "admin"},
          status_code=200, summary="Approve (the tenant's admin): it replaces the HQ locale")
    async def approve(self, db: Db, ctx: Ctx, template_id: FromPath[str],
                      variant_id: FromPath[UUID], data: JSONBody[Decision]) -> Variant:
        return await variants.approve_variant(db, ctx, template_id, variant_id, data)

    @post("/{template_id:str}/variants/{variant_id:uuid}/reject", opt={"scope": "admin"},
          status_code=200, summary="Send back with a comment (the tenant's admin)")
    async def reject(self, db: Db, ctx: Ctx, template_id: FromPath[str],
                     variant_id: FromPath[UUID], data: JSONBody[Decision]) -> Variant:
        return await variants.reject_variant(db, ctx, template_id, variant_id, data)


class TemplateSettingsController(Controller):
    path = "/v1/tenants/{tenant:str}/template-settings"
    tags = ["tenant: templates"]

    @get("/", opt={"scope": "templates:read"}, summary="Values templates print as tenant.*")
    async def get(self, db: Db, ctx: Ctx) -> TemplateSettings:
        return await variants.get_settings(db, ctx)

    @put("/", opt={"scope": "templates:write"}, summary="Replace the template settings")
    async def put(self, db: Db, ctx: Ctx, data: JSONBody[TemplateSettingsPut]) -> TemplateSettings:
        return await variants.put_settings(db, ctx, data)
