"""The authlib authorisation server, wired to asyncpg without blocking the event loop.

How the synchronous authlib classes meet async database access: every protocol request runs
in three steps.

1. **Load** (async): from the raw request we can tell everything authlib might ask for — the
   client id (Basic header or form), the code or token presented and, through the tenant
   embedded in it (or the client's bound tenant), the tenant and its access policy. One
   read-only transaction loads them into an `Exchange`.
2. **Decide** (sync, in the event loop): authlib validates the request and calls our hooks
   (`query_client`, `query_authorization_code`, `save_token`…). The hooks only read the
   `Exchange` (found through a context variable, safe because authlib never yields) and note
   what must be written. No I/O happens here, so running authlib inline costs microseconds
   and needs no worker thread.
3. **Apply** (async, `core.oauth.flows`): the noted writes run in one tenant transaction.
   Their conditional updates are the authority on one-time use: if a concurrent request
   redeemed the same code or rotated the same refresh token first, apply fails and the
   response becomes `invalid_grant` (and the chain is revoked as reuse).
"""

from __future__ import annotations

import contextvars
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from core.oauth.clients import PARTNER_SCOPES, ClientRecord
from core.oauth.store import (
    ACCESS_PREFIX,
    ACCESS_TTL,
    CODE_PREFIX,
    REFRESH_PREFIX,
    CodeRecord,
    Issued,
    TenantAccess,
    TokenRecord,
    new_token,
)

SECRET_METHODS = ["client_secret_basic", "client_secret_post"]


@dataclass
class NewCode:
    code: str
    redirect_uri: str | None
    scopes: list[str]
    challenge: str | None
    challenge_method: str | None


@dataclass
class Exchange:
    """What one protocol request loaded (step 1) and what authlib decided (step 2)."""

    client: ClientRecord | None = None
    access: TenantAccess | None = None
    code: CodeRecord | None = None
    token: TokenRecord | None = None
    # decisions
    issued: Issued | None = None
    new_code: NewCode | None = None
    redeem: CodeRecord | None = None
    rotate: TokenRecord | None = None
    revoke: TokenRecord | None = None
    reused: bool = False  # a used code / rotated refresh token came back: revoke its chain


_exchange: contextvars.ContextVar[Exchange] = contextvars.ContextVar("oauth_exchange")


def current() -> Exchange:
    return _exchange.get()


class Client(ClientMixin):
    def __init__(self, record: ClientRecord) -> None:
        self.record = record

    def get_client_id(self) -> str:
        return self.record.id

    def get_default_redirect_uri(self) -> str | None:
        # Only unambiguous: with several URIs registered the request must name one.
        uris = self.record.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """No scope → everything the client is registered for; any scope beyond that is an
        escalation attempt and fails the request (authlib's default silently drops it)."""
        if not scope:
            return " ".join(sorted(self.record.scopes))
        requested = scope_to_list(scope)
        if not set(requested) <= self.record.scopes:
            return None
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.record.redirect_uris  # exact string match

    def check_client_secret(self, client_secret: str) -> bool:
        return self.record.secret_matches(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.record.client_type == "public":
            return method == "none"
        return method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.record.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.record.grant_types


class AuthorizationCode(AuthorizationCodeMixin):
    def __init__(self, record: CodeRecord) -> None:
        self.record = record
        self.code_challenge = record.code_challenge
        self.code_challenge_method = record.code_challenge_method

    def get_redirect_uri(self) -> str | None:
        return self.record.redirect_uri

    def get_scope(self) -> str:
        return " ".join(self.record.scopes)


class Token(TokenMixin):
    def __init__(self, record: TokenRecord) -> None:
        self.record = record

    def check_client(self, client: Client) -> bool:
        return self.record.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return " ".join(self.record.scopes)

    def get_expires_in(self) -> int:
        return int((self.record.expires_at - self.record.created_at).total_seconds())

    def is_expired(self) -> bool:
        return self.record.expired

    def is_revoked(self) -> bool:
        return self.record.revoked or self.record.rotated or self.record.client_disabled

    def get_user(self) -> str:
        return self.record.subject

    def get_client(self) -> None:
        return None  # not needed by the endpoints we use; clients are loaded separately


def _require_tenant_access() -> None:
    """Token endpoint, after client authentication: the tenant must be active and its
    policy must still admit this partner (it may have changed since consent)."""
    access = current().access
    if access is None or access.tenant.status != "active":
        raise InvalidGrantError("the tenant is unknown or suspended")
    if not access.allows_client:
        raise UnauthorizedClientError(
            f"tenant {access.tenant.id!r} does not allow this partner")


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (plain is no protection against a leaked request); public clients
    must use it, confidential clients may."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if grant.request.client.record.client_type == "public" \
                and not data.get("code_challenge"):
            raise InvalidRequestError("public clients must send a PKCE code_challenge (S256)")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_METHODS, "none"]

    def generate_authorization_code(self) -> str:
        return new_token(CODE_PREFIX, current().access.tenant.id)[1]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        current().new_code = NewCode(
            code=code, redirect_uri=request.payload.redirect_uri,
            scopes=scope_to_list(request.scope), challenge=data.get("code_challenge"),
            challenge_method=data.get("code_challenge_method"))

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        ex = current()
        found = ex.code
        if found is None or found.client_id != client.get_client_id():
            return None
        if found.used:
            ex.reused = True
            return None
        return None if found.expired else AuthorizationCode(found)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        current().redeem = authorization_code.record

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.record.subject

    def validate_token_request(self) -> None:
        super().validate_token_request()
        _require_tenant_access()


class RefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_METHODS, "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh returns a new refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        ex = current()
        found = ex.token
        if found is None or found.kind != "refresh":
            return None
        if found.client_id != self.request.client.get_client_id():
            return None
        if found.rotated and not found.revoked:
            ex.reused = True
            return None
        if found.revoked or found.expired or found.client_disabled:
            return None
        return Token(found)

    def authenticate_user(self, refresh_token: Token) -> str:
        return refresh_token.record.subject

    def revoke_old_credential(self, refresh_token: Token) -> None:
        current().rotate = refresh_token.record

    def validate_token_request(self) -> None:
        super().validate_token_request()
        _require_tenant_access()


class CredentialsGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        named = self.request.form.get("tenant")
        bound = self.request.client.record.tenant
        if named and named != bound:
            raise InvalidRequestError("this client is bound to another tenant")
        _require_tenant_access()


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = [*SECRET_METHODS, "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        found = current().token
        return Token(found) if found is not None else None

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        current().revoke = token.record


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = SECRET_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        found = current().token
        return Token(found) if found is not None else None

    def check_permission(self, token: Token, client: Client, request: OAuth2Request) -> bool:
        return client.record.can_introspect or token.check_client(client)

    def introspect_token(self, token: Token) -> dict[str, Any]:
        found = token.record
        return {
            "active": True,
            "scope": token.get_scope(),
            "client_id": found.client_id,
            "token_type": "Bearer" if found.kind == "access" else "refresh_token",
            "sub": found.subject,
            "tenant": found.tenant_id,
            "exp": int(found.expires_at.timestamp()),
            "iat": int(found.created_at.timestamp()),
        }


def _generate_token(grant_type: str, client: Client, user: str | None = None,
                    scope: str | None = None, expires_in: int | None = None,
                    include_refresh_token: bool = True) -> dict[str, Any]:
    ex = current()
    scope = BearerTokenGenerator.get_allowed_scope(client, scope)
    tenant_id = ex.access.tenant.id
    access_id, access = new_token(ACCESS_PREFIX, tenant_id)
    issued = Issued(grant_type=grant_type, scopes=scope_to_list(scope),
                    subject=user or f"client:{client.get_client_id()}",
                    access_id=access_id, access_token=access)
    token: dict[str, Any] = {"token_type": "Bearer", "access_token": access,
                             "expires_in": ACCESS_TTL, "scope": scope}
    if include_refresh_token:
        issued.refresh_id, issued.refresh_token = new_token(REFRESH_PREFIX, tenant_id)
        token["refresh_token"] = issued.refresh_token
    ex.issued = issued
    return token


class Payload(OAuth2Payload):
    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class Request(OAuth2Request):
    """A protocol request already read from the HTTP layer: method, public URI (authlib
    insists on https except on loopback, so this is the issuer's URL, not the socket's),
    headers and the form or query parameters."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str],
                 params: Iterable[tuple[str, str]]) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = Payload(params)

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data


class Server(AuthorizationServer):
    """Hooks read the current `Exchange`; responses come back as (status, body, headers)."""

    def __init__(self) -> None:
        super().__init__(scopes_supported=sorted(PARTNER_SCOPES))
        self.register_token_generator("default", _generate_token)
        self.register_grant(CodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_grant(CredentialsGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    def query_client(self, client_id: str) -> Client | None:
        record = current().client
        return Client(record) if record is not None and record.id == client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        pass  # the tokens were noted by `_generate_token`; flows store them after authlib

    def create_oauth2_request(self, request: Request) -> Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]):
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


SERVER = Server()


class bound:
    """`with bound(exchange): SERVER.create_token_response(request)`: makes the exchange
    visible to the hooks for the duration of one synchronous authlib call."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def __enter__(self) -> Exchange:
        self._reset = _exchange.set(self.exchange)
        return self.exchange

    def __exit__(self, *exc: object) -> None:
        _exchange.reset(self._reset)


__all__ = ["SERVER", "Exchange", "Request", "bound", "current"]
