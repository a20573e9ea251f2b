"""Plugins: what is installed, HQ governance, tenant configuration."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody

from api.deps import Ctx, CursorParam, Db, Hq, LimitParam
from core.pagination import DEFAULT_LIMIT, Page
from core.plugin_config import service
from core.plugin_config.schemas import HqPlugin, HqPluginUpdate, TenantPlugin, TenantPluginPut
from core.plugin_config.secrets import SecretBox
from plugins.manager import PluginManager
from plugins.types import PluginKind


def provide_plugins(request: Request) -> PluginManager:
    return request.app.state.plugins


def provide_box(request: Request) -> SecretBox:
    return SecretBox.from_settings(request.app.state.settings)


PLUGIN_DEPENDENCIES = {
    "plugins": Provide(provide_plugins, sync_to_thread=False),
    "box": Provide(provide_box, sync_to_thread=False),
}
Plugins = NamedDependency[PluginManager]
Box = NamedDependency[SecretBox]


class HqPluginController(Controller):
    path = "/v1/hq/plugins"
    tags = ["hq: plugins"]
    opt = {"hq": True}
    dependencies = PLUGIN_DEPENDENCIES

    @get("/", opt={"scope": "plugins:read"},
         summary="Installed plugins: name, version, kind, config schema, governance")
    async def list(self, db: Db, plugins: Plugins, box: Box, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT,
                   kind: FromQuery[PluginKind | None] = None) -> Page[HqPlugin]:
        return await service.list_hq_plugins(db, plugins, box, cursor=cursor, limit=limit,
                                             kind=kind)

    @get("/{plugin:str}", opt={"scope": "plugins:read"}, summary="One installed plugin")
    async def get(self, db: Db, plugins: Plugins, box: Box,
                  plugin: FromPath[str]) -> HqPlugin:
        return await service.get_hq_plugin(db, plugins, box, plugin)

    @put("/{plugin:str}", opt={"scope": "plugins:write"},
         summary="Allow or deny tenants a plugin; HQ default config and locked fields")
    async def put(self, db: Db, hq: Hq, plugins: Plugins, box: Box, plugin: FromPath[str],
                  data: JSONBody[HqPluginUpdate]) -> HqPlugin:
        return await service.put_hq_plugin(db, hq, plugins, box, plugin, data)


class TenantPluginController(Controller):
    path = "/v1/tenants/{tenant:str}/plugins"
    tags = ["tenant: plugins"]
    dependencies = PLUGIN_DEPENDENCIES

    @get("/", opt={"scope": "plugins:read"},
         summary="Installed plugins, whether HQ allows them, and this tenant's configuration")
    async def list(self, db: Db, ctx: Ctx, plugins: Plugins, box: Box,
                   cursor: CursorParam = None, limit: LimitParam = DEFAULT_LIMIT,
                   kind: FromQuery[PluginKind | None] = None) -> Page[TenantPlugin]:
        return await service.list_tenant_plugins(db, ctx, plugins, box, cursor=cursor,
                                                 limit=limit, kind=kind)

    @get("/{plugin:str}", opt={"scope": "plugins:read"},
         summary="This tenant's configuration of a plugin (secrets never returned)")
    async def get(self, db: Db, ctx: Ctx, plugins: Plugins, box: Box,
                  plugin: FromPath[str]) -> TenantPlugin:
        return await service.get_tenant_plugin(db, ctx, plugins, box, plugin)

    @put("/{plugin:str}", opt={"scope": "plugins:write"},
         summary="Enable and configure a plugin HQ allows")
    async def put(self, db: Db, ctx: Ctx, plugins: Plugins, box: Box, plugin: FromPath[str],
                  data: JSONBody[TenantPluginPut]) -> TenantPlugin:
        return await service.put_tenant_plugin(db, ctx, plugins, box, plugin, data)

    @delete("/{plugin:str}", opt={"scope": "plugins:write"}, status_code=204,
            summary="Remove this tenant's configuration of a plugin")
    async def remove(self, db: Db, ctx: Ctx, plugin: FromPath[str]) -> None:
        await service.delete_tenant_plugin(db, ctx, plugin)
