"""Request pipeline for `/v1`: request id + access log → authentication → rate limit →
tenant scope. Tenant scoping happens here, before any body is parsed, so a caller can't
learn anything about another tenant's routes: every such request ends in the same 404.

The public OAuth endpoints (`/oauth/*`) are limited in their controllers instead
(`core.oauth.limits`): their budget is per client_id, which travels in the form body, and a
middleware must not consume the body before the handler."""

from __future__ import annotations

import logging
import re
import time
import uuid
from functools import partial

from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from core import ratelimit
from core.auth.schemas import Principal
from core.errors import NotFound, RateLimited, Unauthenticated
from core.logging import request_id_var
from tenants.context import Actor
from tenants.service import context_for, get_tenant

access_log = logging.getLogger("relais.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")


def actor_of(principal: Principal) -> Actor:
    return Actor(kind=principal.kind, id=principal.id, client_id=principal.client_id)


class RequestContextMiddleware(ASGIMiddleware):
    """Assigns the request id (the caller's `X-Request-ID` if sane) and writes the access
    log line."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] != "http":
            await next_app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await next_app(scope, receive, send_with_id)
        finally:
            principal = scope.get("user")
            access_log.info(
                "request", extra={
                    "method": scope["method"], "path": scope["path"], "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "principal": f"{principal.kind}:{principal.id}" if principal else None,
                },
            )
            request_id_var.reset(token)


def _outside_v1(scope: Scope) -> bool:
    return not scope["path"].startswith("/v1/") or scope.get("method") == "OPTIONS"


class AuthMiddleware(ASGIMiddleware):
    """Authenticates every `/v1` request (health checks, OpenAPI and OAuth are public)."""

    should_bypass_for_scope = staticmethod(_outside_v1)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        app = scope["litestar_app"]
        state = app.state
        token = _bearer(scope)
        principal = await state.authenticator(token)
        scope["user"] = principal
        scope["auth"] = token

        settings = state.settings
        decision = await ratelimit.hit(state.redis, settings.redis_prefix,
                                       f"{principal.kind}:{principal.id}",
                                       settings.rate_limit_per_minute)
        if not decision.allowed:
            raise RateLimited(f"rate limit of {decision.limit} requests per minute exceeded",
                              retry_after=decision.reset_in)

        tenant_id = scope.get("path_params", {}).get("tenant")
        if tenant_id is not None:
            if principal.tenant_id is not None and principal.tenant_id != tenant_id:
                raise NotFound(f"tenant {tenant_id!r} not found")
            tenant = await state.access_cache.tenant(tenant_id, partial(get_tenant, state.db))
            scope["state"]["tenant_ctx"] = context_for(
                tenant, actor_of(principal), scope["state"].get("request_id"))

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in rate_limit_headers(decision).items():
                    headers[name] = value
            await send(message)

        await next_app(scope, receive, send_with_limits)


def rate_limit_headers(decision: ratelimit.RateDecision) -> dict[str, str]:
    """The `RateLimit-*` headers of a decision: every rate-limited route, `/v1` or the OAuth
    endpoints, tells the caller its budget the same way."""
    return {"RateLimit-Limit": str(decision.limit),
            "RateLimit-Remaining": str(decision.remaining),
            "RateLimit-Reset": str(decision.reset_in)}


def _bearer(scope: Scope) -> str:
    raw = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
    scheme, _, token = raw.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer credentials: send `Authorization: Bearer <key>`")
    return token.strip()
