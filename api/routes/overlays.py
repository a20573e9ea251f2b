"""Routes of the overlay mechanism (tenants/overlay.py, tenants/rollout.py).

`overlay_controllers(kind, segment, scope)` builds the two controllers every kind of
overlay exposes, with the kind's own definition type in the OpenAPI schema:

    HQ      /v1/hq/{segment}/versions[/{version}[/pilot|/propagate]], /pilots/{tenant_id},
            /rollout
    tenant  /v1/tenants/{tenant}/{segment}/effective, /overlay (GET, PUT)

The lifecycle canvas mounts them at `canvas`; pressure policies or templates call the same
factory with their kind (see docs/overlays.md).
"""

# No `from __future__ import annotations`: the handlers below are closures whose
# annotations name per-kind types, which Litestar must see as objects, not strings.

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody, PathParameter

from api.deps import Ctx, CursorParam, Db, Hq, LimitParam
from core.pagination import DEFAULT_LIMIT, Page
from tenants import overlay, rollout
from tenants.governance import Parameter
from tenants.overlay import Effective, GlobalVersion, KindVersion, Overlay, OverlayUpdate
from tenants.rollout import PilotRequest, Rollout

# Versions are `integer` columns: a larger number is refused as input (400 naming `version`)
# rather than overflowing in the driver as a 500.
Version = Annotated[int, PathParameter(ge=0, le=2**31 - 1)]


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def overlay_controllers(kind_name: str, segment: str,
                        scope: str) -> tuple[type[Controller], type[Controller]]:
    kind = overlay.get_kind(kind_name)
    body_type: Any = msgspec.defstruct(
        f"{_camel(kind_name)}VersionCreate",
        [("definition", kind.definition_type),
         ("parameters", dict[str, Parameter], msgspec.field(default_factory=dict)),
         ("notes", str, "")],
        forbid_unknown_fields=True)
    read, write = f"{scope}:read", f"{scope}:write"

    class HqOverlay(Controller):
        path = f"/v1/hq/{segment}"
        tags = [f"hq: {segment}"]
        opt = {"hq": True}

        @get("/versions", opt={"scope": read}, summary=f"List {kind_name} versions")
        async def list_versions(self, db: Db, cursor: CursorParam = None,
                                limit: LimitParam = DEFAULT_LIMIT) -> Page[GlobalVersion]:
            return await overlay.list_versions(db, kind_name, cursor=cursor, limit=limit)

        @post("/versions", opt={"scope": write},
              summary=f"Publish a new {kind_name} version (the first becomes current)")
        async def publish(self, db: Db, hq: Hq, data: JSONBody[body_type]) -> GlobalVersion:
            return await overlay.create_version(db, hq, kind_name, overlay.VersionCreate(
                definition=data.definition, parameters=data.parameters, notes=data.notes))

        @get("/versions/{version:int}", opt={"scope": read}, summary=f"A {kind_name} version")
        async def get_version(self, db: Db, version: Version) -> GlobalVersion:
            return await overlay.get_version(db, kind_name, version)

        @post("/versions/{version:int}/pilot", opt={"scope": write}, status_code=200,
              summary="Pilot a version on chosen tenants")
        async def pilot(self, db: Db, hq: Hq, version: Version,
                        data: JSONBody[PilotRequest]) -> Rollout:
            return await rollout.start_pilot(db, hq, kind_name, version, data)

        @post("/versions/{version:int}/propagate", opt={"scope": write}, status_code=200,
              summary="Make a version current for every tenant")
        async def propagate(self, db: Db, hq: Hq, version: Version) -> Rollout:
            return await rollout.propagate(db, hq, kind_name, version)

        @delete("/pilots/{tenant_id:str}", opt={"scope": write}, status_code=200,
                summary="End a tenant's pilot: it goes back to the current version")
        async def end_pilot(self, db: Db, hq: Hq, tenant_id: FromPath[str]) -> Rollout:
            return await rollout.end_pilot(db, hq, kind_name, tenant_id)

        @get("/rollout", opt={"scope": read},
             summary="Current version, pilots and the version each tenant runs")
        async def status(self, db: Db) -> Rollout:
            return await rollout.rollout_status(db, kind_name)

    class TenantOverlay(Controller):
        path = f"/v1/tenants/{{tenant:str}}/{segment}"
        tags = [f"tenant: {segment}"]

        @get("/effective", opt={"scope": read},
             summary=f"Effective {kind_name}: global version ⊕ this tenant's overlay")
        async def effective(self, db: Db, ctx: Ctx) -> Effective:
            return await overlay.effective(db, ctx, kind_name)

        @get("/overlay", opt={"scope": read}, summary="This tenant's overrides")
        async def get_overlay(self, db: Db, ctx: Ctx) -> Overlay:
            return await overlay.get_overlay(db, ctx, kind_name)

        @put("/overlay", opt={"scope": write},
             summary="Replace this tenant's overrides (checked against HQ governance)")
        async def put_overlay(self, db: Db, ctx: Ctx,
                              data: JSONBody[OverlayUpdate]) -> Effective:
            return await overlay.put_overlay(db, ctx, kind_name, data)

    for cls, prefix in ((HqOverlay, "Hq"), (TenantOverlay, "Tenant")):
        cls.__name__ = cls.__qualname__ = f"{prefix}{_camel(kind_name)}Controller"
    return HqOverlay, TenantOverlay


class TenantOverlayVersionsController(Controller):
    path = "/v1/tenants/{tenant:str}/overlays"
    tags = ["tenant"]

    @get("/", opt={"scope": "tenants:read"},
         summary="The version of every global definition this tenant runs")
    async def list(self, db: Db, ctx: Ctx) -> Page[KindVersion]:
        # One item per registered kind: a handful, so always a single page.
        return Page(items=await overlay.running_versions(db, ctx))
