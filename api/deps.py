"""Dependencies shared by the controllers, and the guard that enforces route scopes."""

from __future__ import annotations

from typing import Annotated

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import QueryParameter

from api.middleware import actor_of
from core.auth.schemas import Principal
from core.auth.scopes import grants
from core.db import Database
from core.errors import ConfigurationError, Forbidden
from core.pagination import MAX_LIMIT
from tenants.context import HqContext, TenantContext


def scope_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Every authenticated route declares `opt={"scope": ...}`; HQ routes also
    `opt={"hq": True}`. A route that forgot its scope fails closed."""
    if not connection.url.path.startswith("/v1/") or connection.scope["method"] == "OPTIONS":
        return
    required = handler.opt.get("scope")
    if required is None:
        raise ConfigurationError(f"route {connection.url.path} declares no scope")
    principal: Principal = connection.user
    if handler.opt.get("hq") and not principal.is_hq:
        raise Forbidden("this route needs an HQ key")
    if not grants(principal.scopes, required):
        raise Forbidden(f"missing scope {required!r}", required_scope=required)


def provide_db(request: Request) -> Database:
    return request.app.state.db


def provide_tenant_ctx(request: Request) -> TenantContext:
    return request.scope["state"]["tenant_ctx"]


def provide_hq_ctx(request: Request) -> HqContext:
    return HqContext(actor=actor_of(request.user),
                     request_id=request.scope["state"].get("request_id"))


def provide_principal(request: Request) -> Principal:
    return request.user


DEPENDENCIES = {
    "db": Provide(provide_db, sync_to_thread=False),
    "ctx": Provide(provide_tenant_ctx, sync_to_thread=False),
    "hq": Provide(provide_hq_ctx, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
}

# Handler parameter types. Dependencies are injected by parameter name: `db`, `ctx`, `hq`,
# `principal`.
Db = NamedDependency[Database]
Ctx = NamedDependency[TenantContext]
Hq = NamedDependency[HqContext]
CurrentPrincipal = NamedDependency[Principal]
# Query parameters every list endpoint takes.
CursorParam = Annotated[
    str | None, QueryParameter(description="`next_cursor` of the previous page")
]
LimitParam = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)]
