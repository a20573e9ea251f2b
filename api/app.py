"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from arq import create_pool
from arq.connections import RedisSettings
from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from redis.asyncio import Redis

from api.deps import DEPENDENCIES, scope_guard
from api.middleware import AuthMiddleware, RequestContextMiddleware
from api.nul import refuse_nul
from api.problems import EXCEPTION_HANDLERS
from api.routes import ROUTE_HANDLERS
from core.auth.cache import AccessCache
from core.auth.service import authenticate_key
from core.db import Database
from core.oauth.store import ACCESS_PREFIX as OAUTH_ACCESS_PREFIX
from core.oauth.store import authenticate_access_token
from core.settings import Settings
from plugins.manager import load_plugins

VERSION = "0.1.0"


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = await Database.connect(settings)
        redis = Redis.from_url(settings.redis_url)
        arq = await create_pool(RedisSettings.from_dsn(settings.redis_url),
                                default_queue_name=settings.queue_name)
        app.state.db, app.state.redis, app.state.arq = db, redis, arq
        app.state.plugins = load_plugins()  # plugin manager (built-ins + entry points)

        access = app.state.access_cache = AccessCache(settings.auth_cache_seconds)

        async def authenticator(token: str):
            # OAuth access tokens (`ro_...`, issue #8) authenticate like API keys: same
            # Principal, so scopes, tenant 404s and audit attribution apply unchanged.
            # They are not cached: RFC 7009 revocation must take effect at once.
            if token.startswith(OAUTH_ACCESS_PREFIX):
                return await authenticate_access_token(db, token)
            return await access.principal(token, partial(authenticate_key, db))

        app.state.authenticator = authenticator
        try:
            yield
        finally:
            await arq.aclose()
            await redis.aclose()
            await db.close()

    return Litestar(
        route_handlers=ROUTE_HANDLERS,
        lifespan=[lifespan],
        state=State({"settings": settings}),
        dependencies=DEPENDENCIES,
        guards=[scope_guard],
        middleware=[RequestContextMiddleware(), AuthMiddleware()],
        before_request=refuse_nul,
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Relais API",
            version=VERSION,
            description="Multi-tenant customer-relationship platform. HQ routes live under "
                        "`/v1/hq`, a tenant's under `/v1/tenants/{tenant}`.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(path="/"), SwaggerRenderPlugin(path="/swagger")],
            components=Components(security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer",
                                         description="API key or OAuth2 access token"),
            }),
            security=[{"bearer": []}],
        ),
        logging_config=None,  # core.logging configures JSON logs for the whole process
        debug=False,
    )


def app_from_environment() -> Litestar:
    """Uvicorn factory entry point (`relais serve` runs this in production images)."""
    from core.logging import configure_logging
    from core.runtime import settle_heap
    from core.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    settle_heap()
    return app


__all__ = ["create_app"]
