"""HQ registry of partner applications (OAuth clients): registration, secret rotation,
updates, disabling.

Client secrets are 256-bit random strings stored as SHA-256 (as API keys are): shown once,
at creation or rotation. A disabled client keeps its row (tokens and audit entries name it)
and every token it holds stops authenticating at once, since authentication joins this table.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

import asyncpg
import msgspec

from core.audit.service import record_hq
from core.auth.scopes import ALL_SCOPES
from core.db import Connection, Database
from core.errors import InvalidInput, NotFound
from core.oauth.schemas import (
    CreatedOAuthClient,
    OAuthClient,
    OAuthClientCreate,
    OAuthClientUpdate,
)
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import HqContext
from tenants.service import fetch_tenant

# Partners never get key management, OAuth administration or `admin`: a token must not be
# able to mint credentials or widen its own access.
PARTNER_SCOPES: frozenset[str] = ALL_SCOPES - {"admin", "tenants:write"} - {
    f"{r}:{m}" for r in ("keys", "oauth") for m in ("read", "write")
}

_COLUMNS = ("id as client_id, name, client_type, redirect_uris, scopes, grant_types, "
            "subject_tenant_id as tenant, can_introspect, created_at, created_by, updated_at, "
            "secret_rotated_at, disabled_at")


class ClientRecord(msgspec.Struct, frozen=True):
    """What the authorisation server needs to know about a client (secret hash included)."""

    id: str
    name: str
    client_type: str
    secret_hash: bytes | None
    redirect_uris: tuple[str, ...]
    scopes: frozenset[str]
    grant_types: frozenset[str]
    tenant: str | None
    can_introspect: bool

    def secret_matches(self, secret: str) -> bool:
        return self.secret_hash is not None and hmac.compare_digest(
            self.secret_hash, hash_secret(secret))


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def fetch_client_record(conn: Connection, client_id: str) -> ClientRecord | None:
    """An enabled client, or None (unknown and disabled clients look the same)."""
    row = await conn.fetchrow(
        """select id, name, client_type, secret_hash, redirect_uris, scopes, grant_types,
                  subject_tenant_id, can_introspect
           from oauth_clients where id = $1 and disabled_at is null""", client_id)
    if row is None:
        return None
    return ClientRecord(
        id=row["id"], name=row["name"], client_type=row["client_type"],
        secret_hash=bytes(row["secret_hash"]) if row["secret_hash"] is not None else None,
        redirect_uris=tuple(row["redirect_uris"]), scopes=frozenset(row["scopes"]),
        grant_types=frozenset(row["grant_types"]), tenant=row["subject_tenant_id"],
        can_introspect=row["can_introspect"])


def _check_redirect_uri(uri: str, field: str) -> str:
    """Exact-match redirect URIs (RFC 9700 §4.1.3): absolute, no fragment, and https except
    on the loopback interface (RFC 8252 §7.3, for tools running on a desk)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise InvalidInput(f"{uri!r} is not a URL", field=field) from None
    if parts.fragment or "#" in uri:
        raise InvalidInput("a redirect URI must not contain a fragment", field=field)
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname:
        if parts.hostname == "localhost":
            return uri
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                return uri
        except ValueError:
            pass
    raise InvalidInput("a redirect URI must be https (http only on the loopback interface)",
                       field=field)


def _check_scopes(scopes: list[str]) -> list[str]:
    for i, scope in enumerate(scopes):
        if scope not in PARTNER_SCOPES:
            raise InvalidInput(f"{scope!r} is not a scope a partner may hold",
                               field=f"scopes[{i}]")
    return sorted(set(scopes))


def _check_shape(client_type: str, grant_types: list[str], redirect_uris: list[str],
                 tenant: str | None, can_introspect: bool) -> None:
    if client_type == "public" and "client_credentials" in grant_types:
        raise InvalidInput("a public client cannot use client_credentials: it has no secret",
                           field="grant_types")
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        raise InvalidInput("refresh_token only follows authorization_code",
                           field="grant_types")
    if "authorization_code" in grant_types and not redirect_uris:
        raise InvalidInput("authorization_code needs at least one redirect URI",
                           field="redirect_uris")
    if "client_credentials" in grant_types and tenant is None:
        raise InvalidInput("client_credentials needs the tenant the client is bound to",
                           field="tenant")
    if can_introspect and client_type == "public":
        raise InvalidInput("only a confidential client may introspect tokens",
                           field="can_introspect")


def _client(row: asyncpg.Record, secret: str | None = None) -> CreatedOAuthClient:
    return CreatedOAuthClient(**dict(row), client_secret=secret)


def _public(created: CreatedOAuthClient) -> OAuthClient:
    fields = msgspec.structs.asdict(created)
    fields.pop("client_secret")
    return OAuthClient(**fields)


async def create_client(db: Database, hq: HqContext,
                        data: OAuthClientCreate) -> CreatedOAuthClient:
    scopes = _check_scopes(data.scopes)
    uris = [_check_redirect_uri(u, f"redirect_uris[{i}]")
            for i, u in enumerate(data.redirect_uris)]
    grant_types = sorted(set(data.grant_types))
    _check_shape(data.client_type, grant_types, uris, data.tenant, data.can_introspect)
    client_id = f"pc_{secrets.token_hex(8)}"
    secret = f"pcs_{secrets.token_urlsafe(32)}" if data.client_type == "confidential" else None
    async with db.hq_tx() as conn:
        if data.tenant is not None and await fetch_tenant(conn, data.tenant) is None:
            raise InvalidInput(f"tenant {data.tenant!r} not found", field="tenant")
        row = await conn.fetchrow(
            f"""insert into oauth_clients (id, name, client_type, secret_hash, redirect_uris,
                    scopes, grant_types, subject_tenant_id, can_introspect, created_by)
                values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning {_COLUMNS}""",
            client_id, data.name, data.client_type, hash_secret(secret) if secret else None,
            list(dict.fromkeys(uris)), scopes, grant_types, data.tenant, data.can_introspect,
            hq.actor.label)
        await record_hq(conn, hq, "oauth_client.created", "oauth_client", client_id,
                        {"name": data.name, "client_type": data.client_type,
                         "scopes": scopes, "grant_types": grant_types,
                         "redirect_uris": uris}, subject_tenant_id=data.tenant)
    return _client(row, secret)


async def list_clients(db: Database, *, cursor: str | None, limit: int) -> Page[OAuthClient]:
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.hq_tx() as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS} from oauth_clients where ($1::text is null or id > $1)
                order by id limit $2""", after, limit + 1)
    return page_of([_public(_client(r)) for r in rows], limit, lambda c: c.client_id)


async def get_client(db: Database, client_id: str) -> OAuthClient:
    async with db.hq_tx() as conn:
        row = await conn.fetchrow(f"select {_COLUMNS} from oauth_clients where id = $1",
                                  client_id)
    if row is None:
        raise NotFound(f"client {client_id!r} not found")
    return _public(_client(row))


async def update_client(db: Database, hq: HqContext, client_id: str,
                        patch: OAuthClientUpdate) -> OAuthClient:
    """Narrowing scopes or redirect URIs applies to new authorisations; tokens already
    issued keep their scopes until they expire (revoke grants to cut them short)."""
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    if "scopes" in changes:
        changes["scopes"] = _check_scopes(changes["scopes"])
    if "redirect_uris" in changes:
        changes["redirect_uris"] = list(dict.fromkeys(
            _check_redirect_uri(u, f"redirect_uris[{i}]")
            for i, u in enumerate(changes["redirect_uris"])))
    if "grant_types" in changes:
        changes["grant_types"] = sorted(set(changes["grant_types"]))
    async with db.hq_tx() as conn:
        current = await conn.fetchrow(
            f"select {_COLUMNS} from oauth_clients where id = $1 for update", client_id)
        if current is None:
            raise NotFound(f"client {client_id!r} not found")
        merged = dict(current) | changes
        _check_shape(merged["client_type"], merged["grant_types"], merged["redirect_uris"],
                     merged["tenant"], merged["can_introspect"])
        if not changes:
            return _public(_client(current))
        names = list(changes)
        assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
        row = await conn.fetchrow(
            f"""update oauth_clients set {assignments}, updated_at = now() where id = $1
                returning {_COLUMNS}""", client_id, *changes.values())
        await record_hq(conn, hq, "oauth_client.updated", "oauth_client", client_id,
                        changes, subject_tenant_id=row["tenant"])
    return _public(_client(row))


async def rotate_secret(db: Database, hq: HqContext, client_id: str) -> CreatedOAuthClient:
    """A new secret replaces the old one at once: the partner deploys the new secret right
    after this call (tokens already issued keep working until they expire)."""
    secret = f"pcs_{secrets.token_urlsafe(32)}"
    async with db.hq_tx() as conn:
        row = await conn.fetchrow(
            f"""update oauth_clients set secret_hash = $2, secret_rotated_at = now(),
                       updated_at = now()
                where id = $1 and client_type = 'confidential' and disabled_at is null
                returning {_COLUMNS}""", client_id, hash_secret(secret))
        if row is None:
            exists = await conn.fetchval("select client_type from oauth_clients where id = $1",
                                         client_id)
            if exists == "public":
                raise InvalidInput("a public client has no secret", field="client_id")
            raise NotFound(f"client {client_id!r} not found")
        await record_hq(conn, hq, "oauth_client.secret_rotated", "oauth_client", client_id,
                        subject_tenant_id=row["tenant"])
    return _client(row, secret)


async def disable_client(db: Database, hq: HqContext, client_id: str) -> OAuthClient:
    async with db.hq_tx() as conn:
        row = await conn.fetchrow(
            f"""update oauth_clients set disabled_at = coalesce(disabled_at, now()),
                       updated_at = now()
                where id = $1 returning {_COLUMNS}""", client_id)
        if row is None:
            raise NotFound(f"client {client_id!r} not found")
        await record_hq(conn, hq, "oauth_client.disabled", "oauth_client", client_id,
                        subject_tenant_id=row["tenant"])
    return _public(_client(row))

