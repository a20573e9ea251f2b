"""Who approves on the consent page, and how the page is protected.

Relais has no user accounts yet, so the approver is a tenant admin (or an HQ admin) proving
who they are with their admin API key, pasted once into the sign-in form. The key is checked
(`core.auth.service.authenticate_key`) and never stored: the browser then holds a short-lived
session cookie, HMAC-signed with a key derived from `settings.secret_key`, naming the key
(kind and id) and the tenant the admin approves for.

CSRF: every form carries `HMAC(session nonce, purpose, exact authorisation request)`. A token
is only valid for the browser holding the cookie and for the very request it was rendered
for; signing in issues a new nonce, so a token planted before sign-in is worthless after it.
The cookie is HttpOnly, SameSite=Lax and scoped to `/oauth`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from urllib.parse import urlencode

import msgspec

from core.auth.scopes import ADMIN
from core.auth.service import authenticate_key
from core.db import Database
from core.errors import ConfigurationError, Forbidden, NotFound, Unauthenticated
from tenants.context import Actor
from tenants.service import get_tenant

SESSION_COOKIE = "relais_oauth"
SESSION_TTL = 600  # seconds: long enough to read the page, short enough to not linger
# The parameters of an authorisation request carried through the sign-in and consent forms.
AUTH_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state",
               "code_challenge", "code_challenge_method", "tenant")


class SignInError(Exception):
    """Shown on the sign-in page, next to the key field."""


class Session(msgspec.Struct, frozen=True):
    nonce: str
    expires: int
    kind: str | None = None   # the approver's key: "tenant_key" or "hq_key"
    id: str | None = None
    tenant: str | None = None  # the tenant this admin approves for

    @property
    def signed_in(self) -> bool:
        return self.id is not None

    @property
    def approver(self) -> Actor:
        assert self.kind is not None and self.id is not None
        return Actor(kind=self.kind, id=self.id)


def auth_request_params(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The authorisation request inside a query string or form, in a canonical order, with
    repeated parameters kept (authlib rejects them, so they must reach it)."""
    pairs = list(pairs)
    return [(k, v) for key in AUTH_PARAMS for k, v in pairs if k == key]


def anonymous() -> Session:
    return Session(nonce=secrets.token_urlsafe(16), expires=int(time.time()) + SESSION_TTL)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ConfigurationError("RELAIS_SECRET_KEY must be set for the OAuth consent page")
        # A key of its own, so a signature made here means nothing anywhere else.
        self._key = hmac.new(secret_key.encode(), b"relais oauth consent v1",
                             hashlib.sha256).digest()

    def _mac(self, *parts: str) -> bytes:
        return hmac.new(self._key, "\x1f".join(parts).encode(), hashlib.sha256).digest()

    def dump(self, session: Session) -> str:
        payload = _b64(msgspec.json.encode(session))
        return f"{payload}.{_b64(self._mac('session', payload))}"

    def load(self, raw: str | None) -> Session | None:
        """The session in a cookie, or None when it is missing, forged or expired."""
        if not raw or "." not in raw:
            return None
        payload, _, mac = raw.partition(".")
        try:
            if not hmac.compare_digest(_unb64(mac), self._mac("session", payload)):
                return None
            session = msgspec.json.decode(_unb64(payload), type=Session)
        except (ValueError, msgspec.DecodeError):
            return None
        return session if session.expires > time.time() else None

    def csrf(self, session: Session, purpose: str, params: list[tuple[str, str]]) -> str:
        return _b64(self._mac("csrf", purpose, session.nonce, urlencode(params)))

    def csrf_ok(self, session: Session, purpose: str, params: list[tuple[str, str]],
                token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(
            token.encode(), self.csrf(session, purpose, params).encode())


async def sign_in(db: Database, api_key: str, tenant: str | None) -> Session:
    """Checks an admin key and returns the signed-in session (with a new nonce)."""
    try:
        principal = await authenticate_key(db, api_key.strip())
    except (Unauthenticated, Forbidden):
        raise SignInError("this API key is not valid (or its tenant is suspended)") from None
    if ADMIN not in principal.scopes:
        raise SignInError("only an admin key may approve a partner application")
    if principal.tenant_id is not None:
        if tenant and tenant != principal.tenant_id:
            raise SignInError(f"this key belongs to tenant {principal.tenant_id!r}, "
                              f"not {tenant!r}")
        tenant = principal.tenant_id
    elif not tenant:
        raise SignInError("an HQ key must name the tenant it approves for")
    else:
        try:
            await get_tenant(db, tenant)
        except NotFound:
            raise SignInError(f"tenant {tenant!r} not found") from None
    return Session(nonce=secrets.token_urlsafe(16), expires=int(time.time()) + SESSION_TTL,
                   kind=principal.kind, id=principal.id, tenant=tenant)
