from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from litestar import Litestar
from redis.asyncio import Redis

from api.app import create_app
from core.auth import service as keys
from core.auth.schemas import ApiKeyCreate
from core.db import Database
from core.settings import Settings
from tenants import service as tenants
from tenants.context import HqContext
from tenants.schemas import Tenant, TenantCreate
from tests.services import (
    TestServices,
    create_database,
    destroy_database,
    settings_for,
    start_services,
)


@pytest.fixture(scope="session")
async def services() -> AsyncIterator[TestServices]:
    ready = await create_database(start_services())
    yield ready
    await destroy_database(ready)


@pytest.fixture(scope="session")
def settings(services: TestServices) -> Settings:
    return settings_for(services)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    # The app runs in the test's own event loop (Litestar's AsyncTestClient would run it
    # in a portal thread, and the asyncpg pool must not cross loops).
    # The lifespan is entered and exited by one task of its own (anyio cancel scopes
    # inside it must not change tasks between set-up and teardown).
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    lifespan = asyncio.create_task(run_lifespan())
    await started.wait()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as test_client:
        yield test_client
    stop.set()
    await lifespan


@pytest.fixture(scope="session")
async def db(app: Litestar, client: httpx.AsyncClient) -> Database:
    return app.state.db  # opened by the app's lifespan, which `client` runs


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    connection = Redis.from_url(settings.redis_url)
    yield connection
    await connection.aclose()


HQ = HqContext()
_counter = itertools.count()


@pytest.fixture(scope="session")
async def hq_key(db: Database) -> str:
    created = await keys.create_hq_key(db, HQ, ApiKeyCreate(name="test hq", scopes=["admin"]))
    return created.key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def make_tenant(db: Database) -> Callable[..., Awaitable[Tenant]]:
    async def make(prefix: str = "t", **fields: object) -> Tenant:
        values = {"id": f"{prefix}-{next(_counter)}", "name": "Test network",
                  "country": "FR", "timezone": "Europe/Paris", "default_locale": "fr-FR",
                  "locales": ["fr-FR", "en-GB"]} | fields
        return await tenants.create_tenant(db, HQ, TenantCreate(**values))
    return make


@pytest.fixture(scope="session")
def make_key(db: Database) -> Callable[..., Awaitable[str]]:
    async def make(tenant_id: str, scopes: list[str] | None = None) -> str:
        ctx = await tenants.tenant_context(db, tenant_id, HQ.actor)
        created = await keys.create_tenant_key(
            db, ctx, ApiKeyCreate(name="test", scopes=scopes or ["admin"]))
        return created.key
    return make
