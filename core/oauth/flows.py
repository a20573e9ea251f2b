"""The OAuth2 protocol endpoints as async functions: load → authlib → apply.

See `core.oauth.server` for why the three steps are split. Every function takes the issuer
(the public base URL) explicitly and returns a `Reply` the HTTP layer sends as it is: OAuth
clients expect RFC 6749 JSON errors (`error`, `error_description`), not problem details.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidGrantError, OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list

from core.db import Database
from core.oauth.clients import PARTNER_SCOPES, ClientRecord
from core.oauth.server import SERVER, CodeGrant, Exchange, Request, bound
from core.oauth.store import (
    issue_client_credentials,
    load_context,
    parse_token,
    redeem_code,
    revoke_chain,
    revoke_token,
    rotate_refresh,
    save_consent,
)
from tenants.context import Actor
from tenants.schemas import Tenant
from tenants.service import context_for

Params = Iterable[tuple[str, str]]


class Reply(msgspec.Struct):
    status: int
    body: Any
    headers: list[tuple[str, str]]


class ConsentError(Exception):
    """The authorisation request can't be answered by redirecting (unknown client, redirect
    URI not registered): the browser gets an error page instead (RFC 6749 §4.1.2.1)."""


@dataclass
class Consent:
    """A valid authorisation request, ready for the consent page or the decision."""

    request: Request
    exchange: Exchange
    grant: CodeGrant
    client: ClientRecord
    tenant: Tenant | None
    scopes: list[str]
    redirect_uri: str


def _reply(result: tuple[int, Any, Any]) -> Reply:
    status, body, headers = result
    return Reply(status, body, list(headers))


def _tenant_of(token: str | None) -> str | None:
    parsed = parse_token(token) if token else None
    return parsed[1] if parsed else None


def claimed_client_id(headers: Mapping[str, str], form: Mapping[str, str]) -> str | None:
    # The same precedence authlib applies: HTTP Basic first, then the form.
    client_id, _ = extract_basic_authorization(headers)
    return client_id or form.get("client_id")


def _partner(client: ClientRecord) -> Actor:
    return Actor(kind="oauth", id=client.id, client_id=client.id)


def _request(method: str, uri: str, headers: Mapping[str, str], params: Params) -> Request:
    return Request(method, uri, headers, params)


async def token_endpoint(db: Database, issuer: str, headers: Mapping[str, str],
                         params: Params) -> Reply:
    try:
        req = _request("POST", f"{issuer}/oauth/token", headers, params)
    except OAuth2Error as err:  # authlib refuses plain http off the loopback interface
        return _reply(err())
    form = req.form
    grant_type = form.get("grant_type")
    code = form.get("code") if grant_type == "authorization_code" else None
    refresh = form.get("refresh_token") if grant_type == "refresh_token" else None
    client, access, code_rec, token_rec = await load_context(
        db, _tenant_of(code or refresh), claimed_client_id(headers, form), code=code,
        token=refresh, client_tenant=grant_type == "client_credentials")
    ex = Exchange(client=client, access=access, code=code_rec, token=token_rec)
    with bound(ex):
        reply = _reply(SERVER.create_token_response(req))
    if ex.reused and access is not None:
        chain = ex.code if ex.code is not None else ex.token
        what = "authorization code" if ex.code is not None else "refresh token"
        await revoke_chain(db, context_for(access.tenant, _partner(client)), chain.grant_id,
                           f"{what} reused")
    if reply.status != 200 or ex.issued is None:
        return reply
    ctx = context_for(access.tenant, _partner(client))
    if ex.redeem is not None:
        stored = await redeem_code(db, ctx, ex.redeem, ex.issued)
    elif ex.rotate is not None:
        stored = await rotate_refresh(db, ctx, ex.rotate, ex.issued)
    else:
        await issue_client_credentials(db, ctx, client.id, ex.issued)
        stored = True
    if not stored:  # lost a race with another use of the same code / refresh token
        return _reply(InvalidGrantError("the code or refresh token was already used")())
    return reply


async def revocation_endpoint(db: Database, issuer: str, headers: Mapping[str, str],
                              params: Params) -> Reply:
    try:
        req = _request("POST", f"{issuer}/oauth/revoke", headers, params)
    except OAuth2Error as err:
        return _reply(err())
    token = req.form.get("token")
    client, access, _, found = await load_context(
        db, _tenant_of(token), claimed_client_id(headers, req.form), token=token)
    ex = Exchange(client=client, access=access, token=found)
    with bound(ex):
        reply = _reply(SERVER.create_endpoint_response("revocation", req))
    if ex.revoke is not None and access is not None:
        await revoke_token(db, context_for(access.tenant, _partner(client)), ex.revoke)
    return reply


async def introspection_endpoint(db: Database, issuer: str, headers: Mapping[str, str],
                                 params: Params) -> Reply:
    try:
        req = _request("POST", f"{issuer}/oauth/introspect", headers, params)
    except OAuth2Error as err:
        return _reply(err())
    token = req.form.get("token")
    client, access, _, found = await load_context(
        db, _tenant_of(token), claimed_client_id(headers, req.form), token=token)
    if access is None or access.tenant.status != "active":
        found = None  # a suspended tenant's tokens authenticate nothing: report them inactive
    ex = Exchange(client=client, access=access, token=found)
    with bound(ex):
        reply = _reply(SERVER.create_endpoint_response("introspection", req))
    if reply.status == 200 and reply.body.get("active"):
        reply.body["iss"] = issuer
    return reply


async def review_authorization(db: Database, issuer: str, params: Params,
                               tenant_id: str | None, method: str = "GET") -> Consent | Reply:
    """Validates an authorisation request. Returns the `Consent` to show (or decide), or a
    redirect carrying the error to the client; raises `ConsentError` when even the redirect
    URI can't be trusted. With `tenant_id`, also checks the tenant admits the partner."""
    try:
        req = _request(method, f"{issuer}/oauth/authorize", {}, params)
    except OAuth2Error as err:
        raise ConsentError(err.description or err.error) from None
    client, access, _, _ = await load_context(db, tenant_id, req.payload.client_id)
    ex = Exchange(client=client, access=access)
    with bound(ex):
        try:
            grant = SERVER.get_consent_grant(req)
        except OAuth2Error as err:
            if err.redirect_uri:
                return _reply(SERVER.handle_error_response(req, err))
            raise ConsentError(err.description or err.error) from None
    denial = None
    if tenant_id is not None:
        if access is None or access.tenant.status != "active":
            denial = f"tenant {tenant_id!r} is unknown or suspended"
        elif client.tenant is not None and client.tenant != tenant_id:
            denial = "this partner is registered for another tenant"
        elif not access.allows_client:
            denial = f"tenant {tenant_id!r} does not allow this partner"
    if denial is not None:
        return _reply(AccessDeniedError(denial, redirect_uri=grant.redirect_uri,
                                        state=req.payload.state)())
    return Consent(request=req, exchange=ex, grant=grant, client=client,
                   tenant=access.tenant if access is not None else None,
                   scopes=scope_to_list(req.scope), redirect_uri=grant.redirect_uri)


async def decide_authorization(db: Database, issuer: str, params: Params, tenant_id: str,
                               approver: Actor, approve: bool) -> Reply:
    """The admin's answer: a redirect to the client with a code, or with `access_denied`.
    The request is validated again: nothing from the consent page is trusted as checked."""
    consent = await review_authorization(db, issuer, params, tenant_id, method="POST")
    if isinstance(consent, Reply):
        return consent
    ex = consent.exchange
    with bound(ex):
        reply = _reply(SERVER.create_authorization_response(
            consent.request, grant_user=approver.label if approve else None,
            grant=consent.grant))
    if ex.new_code is not None:
        ctx = context_for(consent.tenant, Actor(kind=approver.kind, id=approver.id,
                                                client_id=consent.client.id))
        new = ex.new_code
        await save_consent(db, ctx, consent.client.id, approver.label, new.scopes, new.code,
                           new.redirect_uri, new.challenge, new.challenge_method)
    return reply


def rate_limited(description: str, retry_after: int) -> Reply:
    """The 429 of the token, revocation and introspection endpoints, in their own error
    format (RFC 7009 and RFC 7662 reuse RFC 6749's): OAuth libraries read `error`, not
    problem details. RFC 6749 has no code for "too many requests"; `temporarily_unavailable`
    is its registered code for a server refusing under load, which libraries treat as
    transient. The codes a client reads as "fix your request or credentials"
    (`invalid_request`, `invalid_client`) would be wrong, and `slow_down` belongs to device
    flow polling (RFC 8628). The status and `Retry-After` carry the real answer."""
    return Reply(429, {"error": "temporarily_unavailable", "error_description": description},
                 [("Retry-After", str(retry_after)), ("Cache-Control", "no-store"),
                  ("Pragma", "no-cache")])


def metadata(issuer: str) -> dict[str, Any]:
    """RFC 8414 authorisation server metadata."""
    secret_methods = ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "scopes_supported": sorted(PARTNER_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "revocation_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "code_challenge_methods_supported": ["S256"],
    }
