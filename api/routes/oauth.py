"""OAuth2 for partner tools: HQ client registry, tenant access policy and grants (`/v1`),
and the public protocol endpoints (`/oauth/*`, `/.well-known/*`, outside the API-key
middleware). Protocol answers follow RFC 6749 (JSON `error`), not problem details.

Every `/oauth/*` route is rate-limited here (`core.oauth.limits`) rather than in the
middleware: the budget is per client_id, which the token endpoints receive in the form body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from liquid import CachingFileSystemLoader, Environment, Markup
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Response

from api.deps import Ctx, CursorParam, Db, Hq, LimitParam
from api.middleware import rate_limit_headers
from core.db import Database
from core.errors import RateLimited
from core.oauth import clients, limits, service
from core.oauth.consent import (
    SESSION_COOKIE,
    SESSION_TTL,
    Session,
    Signer,
    SignInError,
    anonymous,
    auth_request_params,
    sign_in,
)
from core.oauth.flows import (
    Consent,
    ConsentError,
    Params,
    Reply,
    claimed_client_id,
    decide_authorization,
    introspection_endpoint,
    metadata,
    rate_limited,
    review_authorization,
    revocation_endpoint,
    token_endpoint,
)
from core.oauth.schemas import (
    AccessPolicy,
    AccessPolicyUpdate,
    CreatedOAuthClient,
    OAuthClient,
    OAuthClientCreate,
    OAuthClientUpdate,
    OAuthGrant,
)
from core.pagination import DEFAULT_LIMIT, Page

# --- /v1: HQ registry and the tenant's side ---------------------------------------------


class HqOAuthClientController(Controller):
    path = "/v1/hq/oauth/clients"
    tags = ["hq: oauth"]
    opt = {"hq": True}

    @post("/", opt={"scope": "oauth:write"},
          summary="Register a partner application (client secret shown once)")
    async def create(self, db: Db, hq: Hq,
                     data: JSONBody[OAuthClientCreate]) -> CreatedOAuthClient:
        return await clients.create_client(db, hq, data)

    @get("/", opt={"scope": "oauth:read"}, summary="List partner applications")
    async def list(self, db: Db, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[OAuthClient]:
        return await clients.list_clients(db, cursor=cursor, limit=limit)

    @get("/{client_id:str}", opt={"scope": "oauth:read"}, summary="Get a partner application")
    async def get(self, db: Db, client_id: FromPath[str]) -> OAuthClient:
        return await clients.get_client(db, client_id)

    @patch("/{client_id:str}", opt={"scope": "oauth:write"},
           summary="Change name, redirect URIs, scopes, grant types")
    async def update(self, db: Db, hq: Hq, client_id: FromPath[str],
                     data: JSONBody[OAuthClientUpdate]) -> OAuthClient:
        return await clients.update_client(db, hq, client_id, data)

    @post("/{client_id:str}/secret", opt={"scope": "oauth:write"}, status_code=200,
          summary="Rotate the client secret (new secret shown once; the old one stops)")
    async def rotate(self, db: Db, hq: Hq, client_id: FromPath[str]) -> CreatedOAuthClient:
        return await clients.rotate_secret(db, hq, client_id)

    @delete("/{client_id:str}", opt={"scope": "oauth:write"}, status_code=200,
            summary="Disable a partner application: its tokens stop working at once")
    async def disable(self, db: Db, hq: Hq, client_id: FromPath[str]) -> OAuthClient:
        return await clients.disable_client(db, hq, client_id)


class TenantOAuthController(Controller):
    path = "/v1/tenants/{tenant:str}/oauth"
    tags = ["tenant: oauth"]

    @get("/policy", opt={"scope": "oauth:read"}, summary="Which partners may reach the tenant")
    async def get_policy(self, db: Db, ctx: Ctx) -> AccessPolicy:
        return await service.get_policy(db, ctx)

    @put("/policy", opt={"scope": "oauth:write"},
         summary="Restrict partners (an allow-list revokes the others' grants at once)")
    async def set_policy(self, db: Db, ctx: Ctx,
                         data: JSONBody[AccessPolicyUpdate]) -> AccessPolicy:
        return await service.set_policy(db, ctx, data)

    @get("/grants", opt={"scope": "oauth:read"}, summary="Partner grants, newest first")
    async def list_grants(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                          limit: LimitParam = DEFAULT_LIMIT,
                          client_id: FromQuery[str | None] = None,
                          active: FromQuery[bool | None] = None) -> Page[OAuthGrant]:
        return await service.list_grants(db, ctx, cursor=cursor, limit=limit,
                                         client_id=client_id, active=active)

    @delete("/grants/{grant_id:str}", opt={"scope": "oauth:write"}, status_code=200,
            summary="Revoke a grant and every token issued under it")
    async def revoke_grant(self, db: Db, ctx: Ctx, grant_id: FromPath[str]) -> OAuthGrant:
        return await service.revoke_grant_by_id(db, ctx, grant_id)


# --- public protocol endpoints ----------------------------------------------------------

_TEMPLATES = Environment(
    loader=CachingFileSystemLoader(Path(__file__).resolve().parent.parent / "templates"
                                   / "oauth"),
    autoescape=True)
# The consent page must not be framed (clickjacking) nor cached; it loads nothing external.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
_VERBS = {"read": "Read", "write": "Read and change"}
_RESOURCE_LABELS = {"tenants": "the tenant profile", "kpis": "KPIs"}


def _issuer(request: Request) -> str:
    return request.app.state.settings.base_url.rstrip("/")


def _signer(request: Request) -> Signer:
    return Signer(request.app.state.settings.secret_key)


async def _form(request: Request) -> list[tuple[str, str]]:
    form = await request.form()
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


def _send(reply: Reply) -> Response:
    headers = {k: v for k, v in reply.headers if k.lower() != "content-type"}
    if reply.status in (301, 302, 303):
        return Response(content=b"", status_code=reply.status, headers=headers)
    return Response(content=reply.body, status_code=reply.status, headers=headers,
                    media_type="application/json")


def _page(template: str, title: str, status: int = 200, **values: Any) -> Response:
    inner = _TEMPLATES.get_template(template).render(**values)
    html = _TEMPLATES.get_template("layout.html").render(title=title, content=Markup(inner))
    return Response(content=html, status_code=status, headers=_PAGE_HEADERS,
                    media_type="text/html; charset=utf-8")


def _with_limits(response: Response, verdict: limits.Verdict) -> Response:
    response.headers.update(rate_limit_headers(verdict.decision))
    return response


async def _count(request: Request, group: limits.Group,
                 client_id: str | None) -> limits.Verdict:
    state = request.app.state
    return await limits.check(state.redis, state.settings, group,
                              request.client.host if request.client else None, client_id)


async def _count_page(request: Request, params: list[tuple[str, str]]) -> limits.Verdict:
    """Pages answer an exhausted budget with problem details: the request is refused before
    the client is looked up, so there is no trusted redirect URI to send an OAuth error to."""
    verdict = await _count(request, "pages", dict(params).get("client_id"))
    if not verdict.allowed:
        raise RateLimited(verdict.message, retry_after=verdict.decision.reset_in)
    return verdict


def _error_page(message: str, status: int = 400) -> Response:
    return _page("error.html", "Access request", status, message=message)


def _with_session(response: Response, request: Request, session: Session) -> Response:
    response.set_cookie(SESSION_COOKIE, _signer(request).dump(session), max_age=SESSION_TTL,
                        path="/oauth", httponly=True, samesite="lax",
                        secure=_issuer(request).startswith("https://"))
    return response


def _signin_page(request: Request, consent: Consent, session: Session,
                 params: list[tuple[str, str]], error: str | None = None,
                 status: int = 200) -> Response:
    named_tenant = dict(params).get("tenant")
    page = _page("signin.html", "Sign in", status, client_name=consent.client.name,
                 tenant=named_tenant, ask_tenant=not named_tenant, error=error,
                 params=params, csrf_token=_signer(request).csrf(session, "signin", params))
    return _with_session(page, request, session)


def _consent_page(request: Request, consent: Consent, session: Session,
                  params: list[tuple[str, str]]) -> Response:
    scopes = []
    for scope in consent.scopes:
        resource, _, mode = scope.partition(":")
        scopes.append({"name": scope, "description": f"{_VERBS[mode]} "
                                                     f"{_RESOURCE_LABELS.get(resource, resource)}"})
    return _page("consent.html", "Approve access", client_name=consent.client.name,
                 client_id=consent.client.id, tenant_name=consent.tenant.name,
                 tenant_id=consent.tenant.id, scopes=scopes,
                 redirect_host=urlsplit(consent.redirect_uri).netloc,
                 approver=session.approver.label, params=params,
                 csrf_token=_signer(request).csrf(session, "consent", params))


@get("/oauth/authorize", opt={"public": True}, tags=["oauth"], include_in_schema=False)
async def authorize_page(request: Request) -> Response:
    """The authorisation endpoint: sign-in page, then the consent page."""
    params = auth_request_params(request.query_params.multi_items())
    verdict = await _count_page(request, params)
    return _with_limits(await _authorization(request, params), verdict)


async def _authorization(request: Request, params: list[tuple[str, str]]) -> Response:
    session = _signer(request).load(request.cookies.get(SESSION_COOKIE))
    named_tenant = dict(params).get("tenant")
    if session is not None and session.signed_in and named_tenant \
            and named_tenant != session.tenant:
        session = None  # signed in for another tenant: sign in again
    tenant = session.tenant if session is not None and session.signed_in else None
    try:
        consent = await review_authorization(request.app.state.db, _issuer(request), params,
                                             tenant)
    except ConsentError as err:
        return _error_page(str(err))
    if isinstance(consent, Reply):
        return _send(consent)
    if session is None or not session.signed_in:
        return _signin_page(request, consent, session or anonymous(), params)
    return _consent_page(request, consent, session, params)


@post("/oauth/authorize/session", opt={"public": True}, tags=["oauth"],
      include_in_schema=False, status_code=303)
async def authorize_sign_in(request: Request) -> Response:
    pairs = await _form(request)
    params = auth_request_params(pairs)
    verdict = await _count_page(request, params)
    return _with_limits(await _sign_in(request, params, dict(pairs)), verdict)


async def _sign_in(request: Request, params: list[tuple[str, str]],
                   form: dict[str, str]) -> Response:
    back = Response(content=b"", status_code=303,
                    headers={"Location": f"/oauth/authorize?{urlencode(params)}"})
    session = _signer(request).load(request.cookies.get(SESSION_COOKIE))
    if session is None or not _signer(request).csrf_ok(session, "signin", params,
                                                       form.get("csrf_token")):
        return back  # expired or foreign form: the page starts over with a fresh session
    try:
        signed_in = await sign_in(request.app.state.db, form.get("api_key", ""),
                                  form.get("tenant") or form.get("approve_for") or None)
    except SignInError as err:
        try:
            consent = await review_authorization(request.app.state.db, _issuer(request),
                                                 params, None)
        except ConsentError as bad:
            return _error_page(str(bad))
        if isinstance(consent, Reply):
            return _send(consent)
        return _signin_page(request, consent, session, params, error=str(err), status=401)
    return _with_session(back, request, signed_in)


@post("/oauth/authorize", opt={"public": True}, tags=["oauth"], include_in_schema=False,
      status_code=302)
async def authorize_decision(request: Request) -> Response:
    pairs = await _form(request)
    params = auth_request_params(pairs)
    verdict = await _count_page(request, params)
    return _with_limits(await _decision(request, params, dict(pairs)), verdict)


async def _decision(request: Request, params: list[tuple[str, str]],
                    form: dict[str, str]) -> Response:
    session = _signer(request).load(request.cookies.get(SESSION_COOKIE))
    if session is None or not session.signed_in or not _signer(request).csrf_ok(
            session, "consent", params, form.get("csrf_token")):
        return _error_page("This approval form expired or was not issued to this browser. "
                           "Start again from the partner application.", 403)
    if dict(params).get("tenant", session.tenant) != session.tenant:
        return _error_page("You are signed in for another tenant than this request names. "
                           "Start again from the partner application.", 403)
    decision = form.get("decision")
    if decision not in ("approve", "deny"):
        return _error_page("decision must be approve or deny")
    try:
        reply = await decide_authorization(request.app.state.db, _issuer(request), params,
                                           session.tenant, session.approver,
                                           approve=decision == "approve")
    except ConsentError as err:
        return _error_page(str(err))
    return _send(reply)


@post("/oauth/token", opt={"public": True}, tags=["oauth"], status_code=200,
      summary="Token endpoint (RFC 6749): authorization_code, refresh_token, "
              "client_credentials")
async def token(request: Request) -> Response:
    return await _protocol(request, token_endpoint)


@post("/oauth/revoke", opt={"public": True}, tags=["oauth"], status_code=200,
      summary="Token revocation (RFC 7009)")
async def revoke(request: Request) -> Response:
    return await _protocol(request, revocation_endpoint)


@post("/oauth/introspect", opt={"public": True}, tags=["oauth"], status_code=200,
      summary="Token introspection (RFC 7662), for resource servers")
async def introspect(request: Request) -> Response:
    return await _protocol(request, introspection_endpoint)


Endpoint = Callable[[Database, str, Mapping[str, str], Params], Awaitable[Reply]]


async def _protocol(request: Request, endpoint: Endpoint) -> Response:
    """Token, revocation, introspection: counted before the client is authenticated, so a
    wrong secret costs budget like a right one (guessing secrets is what the limit stops)."""
    pairs = await _form(request)
    verdict = await _count(request, "token", claimed_client_id(request.headers, dict(pairs)))
    if not verdict.allowed:
        reply = rate_limited(verdict.message, verdict.decision.reset_in)
    else:
        reply = await endpoint(request.app.state.db, _issuer(request), request.headers, pairs)
    return _with_limits(_send(reply), verdict)


@get("/.well-known/oauth-authorization-server", opt={"public": True}, tags=["oauth"],
     summary="Authorization server metadata (RFC 8414)")
async def server_metadata(request: Request) -> dict[str, Any]:
    return metadata(_issuer(request))


oauth_routes = [authorize_page, authorize_sign_in, authorize_decision, token, revoke,
                introspect, server_metadata]
