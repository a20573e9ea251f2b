"""Objects of tenant A for the cross-tenant walk (tests/crosstenant.py) and the tests."""

from __future__ import annotations

from typing import Any

from core.connectors import runs, service
from core.connectors.schemas import ConnectorCreate
from core.plugin_config import service as plugin_config
from core.plugin_config.schemas import HqPluginUpdate, TenantPluginPut
from core.plugin_config.secrets import SecretBox
from tenants.context import HqContext, TenantContext

EMAIL_CONFIG = {"host": "smtp.example.test", "from_address": "news@example.test",
                "password": "smtp-secret-password"}
CSV_MAPPING = {"identifiers": {"email": "email"}, "traits": {"first_name": "first_name"}}


def _app_state(world: Any) -> Any:
    # The test client's ASGI transport holds the app (plugin manager, settings).
    return world.client._transport.app.state


async def allow(db: Any, plugins: Any, box: SecretBox, name: str, **defaults: Any) -> None:
    await plugin_config.put_hq_plugin(db, HqContext(), plugins, box, name,
                                      HqPluginUpdate(allowed=True, **defaults))


async def enable(db: Any, ctx: TenantContext, plugins: Any, box: SecretBox, name: str,
                 config: dict | None = None) -> None:
    await allow(db, plugins, box, name)
    await plugin_config.put_tenant_plugin(db, ctx, plugins, box, name,
                                          TenantPluginPut(config=config or {}))


async def make_plugin_config(world: Any) -> str:
    state = _app_state(world)
    box = SecretBox.from_settings(state.settings)
    await enable(world.db, world.ctx, state.plugins, box, "email", EMAIL_CONFIG)
    return "email"


async def make_connector(world: Any, connector_id: str = "walk-import") -> str:
    state = _app_state(world)
    box = SecretBox.from_settings(state.settings)
    await enable(world.db, world.ctx, state.plugins, box, "file_import")
    created = await service.create_connector(
        world.db, world.ctx, state.plugins, box, state.settings.base_url,
        ConnectorCreate(id=connector_id, type="file_import", name="walk",
                        config={"mapping": CSV_MAPPING}))
    return created.id


async def make_run(world: Any) -> str:
    connector_id = await make_connector(world, "walk-runs")
    async with world.db.tenant_tx(world.ctx) as conn:
        run = await runs.create_run(conn, world.ctx, connector_id, "path", "walk.csv")
    return run.id
