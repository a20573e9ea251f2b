"""Property-based fuzzing of every operation of the live OpenAPI schema with Schemathesis.

Backs the rule "malformed or invalid input is a 4xx problem naming the field, never a 500"
with generated requests rather than the hand-picked ones of test_bad_input_walk.py:
Schemathesis draws valid (positive) and schema-violating (negative) path, query, header and
body values for each operation, and every answer is checked here.

The requests go through an httpx ASGI client in the test's own event loop (Schemathesis' own
ASGI transport runs the app on another loop, which the asyncpg pool must not cross), so
Schemathesis only generates the cases. The module gets a database of its own: positive
fuzzing of HQ writes (data model, identity rules, policy rollouts) changes platform-wide
state that the rest of the suite relies on.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

import tests.crosstenant as registry
from api.app import create_app
from core.auth import service as keys
from core.auth.schemas import ApiKeyCreate
from tenants import service as tenants
from tenants.context import HqContext
from tenants.schemas import TenantCreate
from tenants.service import context_for
from tests import services as test_services
from tests.campaigns import factories as campaign_factories
from tests.conftest import auth

pytestmark = pytest.mark.slow

EXAMPLES = 12  # per operation and pass: the whole module stays around a minute on 2 cores
BASE_URL = "http://testserver"
_PARAM = re.compile(r"{([a-z_]+)}")
_HQ = HqContext()


@dataclass
class Fuzz:
    client: httpx.AsyncClient
    hq_key: str
    tenant_key: str
    world: registry.World
    hq_tenant: str  # a second tenant, for HQ routes taking {tenant_id} (suspend, patch, ...)


async def _tenant(db, tenant_id: str):
    return await tenants.create_tenant(db, _HQ, TenantCreate(
        id=tenant_id, name="Fuzz network", country="FR", timezone="Europe/Paris",
        default_locale="fr-FR", locales=["fr-FR", "en-GB"]))


@pytest.fixture(scope="module")
async def fuzz(services: test_services.TestServices) -> AsyncIterator[Fuzz]:
    own = await test_services.create_database(msgspec.structs.replace(
        services, database=f"{services.database}_fuzz"))
    app = create_app(test_services.settings_for(own))
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:  # one task enters and exits it (see tests/conftest.py)
        async with app.lifespan():
            started.set()
            await stop.wait()

    lifespan = asyncio.create_task(run_lifespan())
    await started.wait()
    # The campaign factory caches its HQ templates for the session's database: this module's
    # database needs its own, and the rest of the session gets the cached ones back after.
    shared_templates = dict(campaign_factories._TEMPLATES)
    campaign_factories._TEMPLATES.clear()
    try:
        db = app.state.db
        hq_key = (await keys.create_hq_key(
            db, _HQ, ApiKeyCreate(name="fuzz hq", scopes=["admin"]))).key
        tenant = await _tenant(db, "fuzz")
        await _tenant(db, "fuzz-hq")
        ctx = context_for(tenant, _HQ.actor)
        tenant_key = (await keys.create_tenant_key(
            db, ctx, ApiKeyCreate(name="fuzz", scopes=["admin"]))).key
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=BASE_URL) as client:
            world = registry.World(db=db, ctx=ctx, admin_key=tenant_key, client=client)
            yield Fuzz(client, hq_key, tenant_key, world, "fuzz-hq")
    finally:
        campaign_factories._TEMPLATES.clear()
        campaign_factories._TEMPLATES.update(shared_templates)
        stop.set()
        await lifespan
        await test_services.destroy_database(own)


def _draw(strategy: st.SearchStrategy, count: int) -> list[Any]:
    """`count` examples of `strategy`, the same ones on every run (CI must be deterministic)."""
    drawn: list[Any] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case: Any) -> None:
        drawn.append(case)

    try:
        collect()
    except Unsatisfiable:
        pass  # negative mode on an operation with nothing to get wrong (no parameters, no body)
    return drawn


def _as_httpx(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Schemathesis serializes a case for `requests`; the same call for httpx."""
    out: dict[str, Any] = {"method": kwargs["method"], "url": kwargs["url"],
                           "headers": kwargs.get("headers") or {},
                           "params": kwargs.get("params") or None}
    if "json" in kwargs:
        out["json"] = kwargs["json"]
    if "data" in kwargs:
        data = kwargs["data"]
        out["data" if isinstance(data, dict) else "content"] = data
    if "files" in kwargs:
        out["files"] = kwargs["files"]
    return out


def _problem_failure(response: httpx.Response) -> str | None:
    """Why a 4xx answer is not a proper problem, or None."""
    if response.headers.get("content-type") != "application/problem+json":
        return f"content-type {response.headers.get('content-type')!r}"
    body = response.json()
    if body.get("status") != response.status_code or not body.get("title"):
        return "problem without status/title"
    if response.status_code in (400, 422):
        errors = body.get("errors") or []
        if not body.get("field") and not (errors and all(e.get("field") for e in errors)):
            return "no field named"
    return None


async def _fixed_ids(path: str, fuzz: Fuzz, cache: dict[str, str]) -> dict[str, str]:
    """Real objects for the path parameters, so generated bodies reach the services."""
    if path.startswith("/v1/hq/"):
        return {"tenant_id": fuzz.hq_tenant} if "{tenant_id}" in path else {}
    values = {"tenant": fuzz.world.ctx.tenant_id}
    for name in _PARAM.findall(path):
        if name != "tenant" and name in registry.FACTORIES:
            if name not in cache:
                cache[name] = await registry.FACTORIES[name](fuzz.world)
            values[name] = cache[name]
    return values


async def test_generated_requests_never_get_a_500_and_4xx_are_problems(fuzz: Fuzz):
    spec = (await fuzz.client.get("/schema/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    # DELETEs last, so the objects the other operations are pointed at still exist.
    operations.sort(key=lambda op: (op.method.upper() == "DELETE", op.path, op.method))
    cache: dict[str, str] = {}
    failures: list[str] = []
    sent = 0
    for operation in operations:
        path = operation.path
        headers = auth(fuzz.hq_key if path.startswith("/v1/hq/") else fuzz.tenant_key)
        fixed = await _fixed_ids(path, fuzz, cache)
        passes = [(GenerationMode.POSITIVE, fixed), (GenerationMode.NEGATIVE, fixed)]
        if len(_PARAM.findall(path)) > len(fixed):
            # and once with generated ids: a malformed id must be a 404/4xx, not reach SQL
            passes.append((GenerationMode.POSITIVE, {"tenant": fuzz.world.ctx.tenant_id}))
        for mode, path_parameters in passes:
            strategy = operation.as_strategy(
                generation_mode=mode, headers=headers,
                path_parameters={k: v for k, v in path_parameters.items()
                                 if f"{{{k}}}" in path})
            for case in _draw(strategy, EXAMPLES):
                request = _as_httpx(case.as_transport_kwargs(base_url=BASE_URL))
                sent += 1
                response = await fuzz.client.request(**request)
                why = None
                if response.status_code >= 500:
                    why = "server error"
                elif 400 <= response.status_code < 500 and path.startswith("/v1/"):
                    why = _problem_failure(response)
                if why:
                    failures.append(
                        f"{why}: {mode.value} {operation.method.upper()} {path} -> "
                        f"{response.status_code} {response.text[:300]}\n    "
                        f"{case.as_curl_command(headers=headers)[:600]}")
    print(f"{sent} generated requests over {len(operations)} operations")
    assert sent > 1000
    assert failures == [], "\n".join(failures)
