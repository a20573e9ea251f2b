"""Object factories for the cross-tenant walk (tests/platform/test_cross_tenant.py).

The walk calls every `/v1/tenants/{tenant}/...` route of the OpenAPI schema with tenant B's
admin key. For each path parameter other than `{tenant}`, it needs a real object of tenant A:
register a factory here, keyed by the parameter name. A route with an unregistered parameter
fails the walk, so new routes can't skip it.

A factory receives a `World` (db, tenant A's context, A's admin key, the test client) and
returns the id of an object it created in tenant A.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from core.auth import service as keys
from core.auth.schemas import ApiKeyCreate
from core.db import Database
from tenants.context import TenantContext


@dataclass
class World:
    db: Database
    ctx: TenantContext
    admin_key: str
    client: Any


Factory = Callable[[World], Awaitable[str]]
FACTORIES: dict[str, Factory] = {}


def factory(param: str) -> Callable[[Factory], Factory]:
    def register(fn: Factory) -> Factory:
        FACTORIES[param] = fn
        return fn
    return register


@factory("key_id")
async def _api_key(world: World) -> str:
    created = await keys.create_tenant_key(world.db, world.ctx,
                                           ApiKeyCreate(name="walk", scopes=["admin"]))
    return created.id


@factory("grant_id")  # OAuth grants (issue #8)
async def _oauth_grant(world: World) -> str:
    from tests.oauth.factories import make_grant
    return await make_grant(world.db, world.ctx)


@factory("customer_id")  # customer data (issue #3)
async def _customer(world: World) -> str:
    from tests.customers.factories import make_customer
    return await make_customer(world)


@factory("message_id")  # customer data (issue #3)
async def _event(world: World) -> str:
    from tests.customers.factories import make_event
    return await make_event(world)


@factory("import_id")  # customer data (issue #3)
async def _import(world: World) -> str:
    from tests.customers.factories import make_import
    return await make_import(world)


@factory("plugin")  # plugins (issue #4)
async def _plugin_config(world: World) -> str:
    from tests.connectors.factories import make_plugin_config
    return await make_plugin_config(world)


@factory("connector_id")  # connectors (issue #4)
async def _connector(world: World) -> str:
    from tests.connectors.factories import make_connector
    return await make_connector(world)


@factory("run_id")  # connectors (issue #4)
async def _connector_run(world: World) -> str:
    from tests.connectors.factories import make_run
    return await make_run(world)



@factory("template_id")  # templates (issue #6)
async def _template(world: World) -> str:
    from tests.templates.factories import make_template
    return await make_template(world)


@factory("variant_id")  # templates (issue #6)
async def _variant(world: World) -> str:
    from tests.templates.factories import make_variant
    return await make_variant(world)



@factory("msg_id")  # messaging (issue #6)
async def _message(world: World) -> str:
    from tests.messaging.factories import make_message
    return await make_message(world)


@factory("segment_id")  # segments & lifecycle (issue #5)
async def _segment(world: World) -> str:
    from tests.segments.factories import make_segment
    return await make_segment(world)


@factory("campaign_id")  # campaigns (issue #7)
async def _campaign(world: World) -> str:
    from tests.campaigns.factories import make_campaign
    return await make_campaign(world)


@factory("holdout_id")  # holdout groups (issue #7)
async def _holdout(world: World) -> str:
    from tests.campaigns.factories import make_holdout
    return await make_holdout(world)
