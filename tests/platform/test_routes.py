"""Static checks over every registered route, so new routes inherit the platform rules."""

from __future__ import annotations

from litestar.handlers import HTTPRouteHandler

from core.auth.scopes import ALL_SCOPES


def _v1_handlers(app):
    for route in app.routes:
        if not route.path.startswith("/v1/"):
            continue
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler) and "OPTIONS" not in handler.http_methods:
                yield route.path, handler


def test_every_v1_route_declares_a_known_scope(app):
    assert len(list(_v1_handlers(app))) >= 10
    missing = [(path, sorted(h.http_methods)) for path, h in _v1_handlers(app)
               if h.opt.get("scope") not in ALL_SCOPES]
    assert missing == []


def test_hq_routes_require_hq_keys_and_tenant_routes_are_tenant_scoped(app):
    for path, handler in _v1_handlers(app):
        if path.startswith("/v1/hq/"):
            assert handler.opt.get("hq") is True, path
        else:
            assert path.startswith("/v1/tenants/{tenant"), path
            assert not handler.opt.get("hq"), path
