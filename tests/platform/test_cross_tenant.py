"""Tenant B's credentials against every tenant route of tenant A: always 404.

The walk reads the live OpenAPI schema, so every route added to the API is covered without
touching this file; a new path parameter needs a factory in tests/crosstenant.py.
"""

from __future__ import annotations

import re

import tests.crosstenant as registry
from tenants.context import HqContext
from tenants.service import context_for
from tests.conftest import auth

_PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")
_BODY_METHODS = {"post", "put", "patch"}


def _tenant_operations(schema: dict) -> list[tuple[str, str]]:
    return sorted(
        (path, method)
        for path, item in schema["paths"].items() if path.startswith("/v1/tenants/{tenant}")
        for method in item if method in {"get", "post", "put", "patch", "delete"}
    )


async def _objects_of_a(path: str, world: registry.World, cache: dict[str, str]) -> dict:
    values = {"tenant": world.ctx.tenant_id}
    for name in _PARAM.findall(path):
        if name == "tenant":
            continue
        assert name in registry.FACTORIES, (
            f"{path}: no factory for path parameter {{{name}}} in tests/crosstenant.py")
        if name not in cache:
            cache[name] = await registry.FACTORIES[name](world)
        values[name] = cache[name]
    return values


async def test_every_tenant_route_is_404_with_another_tenants_key(
        client, db, make_tenant, make_key):
    tenant_a, tenant_b = await make_tenant("walk-a"), await make_tenant("walk-b")
    key_a, key_b = await make_key(tenant_a.id), await make_key(tenant_b.id)
    world = registry.World(db=db, ctx=context_for(tenant_a, HqContext().actor),
                           admin_key=key_a, client=client)
    schema = (await client.get("/schema/openapi.json")).json()
    operations = _tenant_operations(schema)
    assert len(operations) >= 4
    cache: dict[str, str] = {}
    failures = []
    for path, method in operations:
        values = await _objects_of_a(path, world, cache)
        url = _PARAM.sub(lambda m: values[m.group(1)], path)  # noqa: B023
        body = {} if method in _BODY_METHODS else None
        # 1. tenant A's path with tenant B's key.
        r = await client.request(method.upper(), url, headers=auth(key_b), json=body)
        if r.status_code != 404 or r.headers["content-type"] != "application/problem+json":
            failures.append((method, url, "A's path", r.status_code))
        # 2. tenant B's own path, pointing at tenant A's objects.
        if len(values) > 1:
            url_b = _PARAM.sub(lambda m: tenant_b.id if m.group(1) == "tenant"
                               else values[m.group(1)], path)  # noqa: B023
            r = await client.request(method.upper(), url_b, headers=auth(key_b), json=body)
            allowed = {404} if method not in _BODY_METHODS else {400, 404, 422}
            if r.status_code not in allowed:
                failures.append((method, url_b, "A's object", r.status_code))
    assert failures == []
