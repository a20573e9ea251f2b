"""API keys: creation (secret shown once), authentication, revocation.

Key format: `rh_<id>_<secret>` for HQ keys and `rt_<tenant>_<id>_<secret>` for tenant keys.
The tenant in a tenant key lets authentication run inside that tenant's RLS scope; only a
SHA-256 of the whole token is stored (keys are 256-bit random, so a plain hash is enough and
keeps verification cheap).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import asyncpg

from core.audit.service import record, record_hq
from core.auth.schemas import ApiKey, ApiKeyCreate, CreatedApiKey, Principal
from core.auth.scopes import unknown_scopes
from core.db import Connection, Database, scope_to_tenant
from core.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import HqContext, TenantContext
from tenants.service import fetch_tenant

_COLUMNS = "id, name, scopes, created_at, created_by, expires_at, revoked_at, last_used_at"
# last_used_at is refreshed at most this often, so authentication rarely writes.
_LAST_USED_RESOLUTION = "1 minute"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _new_secret() -> tuple[str, str]:
    return secrets.token_hex(8), secrets.token_urlsafe(32)


def _check_create(data: ApiKeyCreate) -> None:
    bad = unknown_scopes(data.scopes)
    if bad:
        raise InvalidInput(f"unknown scope(s): {', '.join(bad)}", field="scopes")
    if data.expires_at is not None:
        if data.expires_at.tzinfo is None:
            raise InvalidInput("expires_at needs a time zone offset", field="expires_at")
        if data.expires_at <= datetime.now(UTC):
            raise InvalidInput("expires_at is in the past", field="expires_at")


def _key(row: asyncpg.Record, tenant_id: str | None, cls=ApiKey, **extra) -> ApiKey:
    return cls(**dict(row), kind="hq" if tenant_id is None else "tenant",
               tenant_id=tenant_id, **extra)


async def create_tenant_key(db: Database, ctx: TenantContext,
                            data: ApiKeyCreate) -> CreatedApiKey:
    _check_create(data)
    key_id, secret = _new_secret()
    token = f"rt_{ctx.tenant_id}_{key_id}_{secret}"
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            f"""insert into api_keys (tenant_id, id, name, key_hash, scopes, created_by, expires_at)
                values ($1, $2, $3, $4, $5, $6, $7) returning {_COLUMNS}""",
            ctx.tenant_id, key_id, data.name, _hash(token), sorted(set(data.scopes)),
            ctx.actor.label, data.expires_at,
        )
        await record(conn, ctx, "key.created", "api_key", key_id,
                     {"name": data.name, "scopes": sorted(set(data.scopes))})
    return _key(row, ctx.tenant_id, CreatedApiKey, key=token)


async def create_hq_key(db: Database, hq: HqContext, data: ApiKeyCreate) -> CreatedApiKey:
    _check_create(data)
    key_id, secret = _new_secret()
    token = f"rh_{key_id}_{secret}"
    async with db.hq_tx() as conn:
        row = await conn.fetchrow(
            f"""insert into hq_api_keys (id, name, key_hash, scopes, created_by, expires_at)
                values ($1, $2, $3, $4, $5, $6) returning {_COLUMNS}""",
            key_id, data.name, _hash(token), sorted(set(data.scopes)), hq.actor.label,
            data.expires_at,
        )
        await record_hq(conn, hq, "hq_key.created", "api_key", key_id,
                        {"name": data.name, "scopes": sorted(set(data.scopes))})
    return _key(row, None, CreatedApiKey, key=token)


async def list_tenant_keys(db: Database, ctx: TenantContext, *, cursor: str | None,
                           limit: int) -> Page[ApiKey]:
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS} from api_keys where ($1::text is null or id > $1)
                order by id limit $2""", after, limit + 1)
    return page_of([_key(r, ctx.tenant_id) for r in rows], limit, lambda k: k.id)


async def list_hq_keys(db: Database, *, cursor: str | None, limit: int) -> Page[ApiKey]:
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.hq_tx() as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS} from hq_api_keys where ($1::text is null or id > $1)
                order by id limit $2""", after, limit + 1)
    return page_of([_key(r, None) for r in rows], limit, lambda k: k.id)


async def revoke_tenant_key(db: Database, ctx: TenantContext, key_id: str) -> ApiKey:
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            f"""update api_keys set revoked_at = coalesce(revoked_at, now())
                where id = $1 returning {_COLUMNS}""", key_id)
        if row is None:
            raise NotFound(f"key {key_id!r} not found")
        await record(conn, ctx, "key.revoked", "api_key", key_id)
    return _key(row, ctx.tenant_id)


async def revoke_hq_key(db: Database, hq: HqContext, key_id: str) -> ApiKey:
    async with db.hq_tx() as conn:
        row = await conn.fetchrow(
            f"""update hq_api_keys set revoked_at = coalesce(revoked_at, now())
                where id = $1 returning {_COLUMNS}""", key_id)
        if row is None:
            raise NotFound(f"key {key_id!r} not found")
        await record_hq(conn, hq, "hq_key.revoked", "api_key", key_id)
    return _key(row, None)


async def count_hq_keys(db: Database) -> int:
    async with db.hq_tx() as conn:
        return await conn.fetchval("select count(*) from hq_api_keys")


def _parse(token: str) -> tuple[str | None, str] | None:
    """(tenant or None for HQ, key id), or None when the token is not one of our keys."""
    if token.startswith("rh_"):
        parts = token.split("_", 2)
        return (None, parts[1]) if len(parts) == 3 else None
    if token.startswith("rt_"):
        parts = token.split("_", 3)
        return (parts[1], parts[2]) if len(parts) == 4 else None
    return None


async def _check_key_row(conn: Connection, table: str, key_id: str,
                         token: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""update {table} set last_used_at = now()
            where id = $1 and revoked_at is null and (expires_at is null or expires_at > now())
              and (last_used_at is null or last_used_at < now() - interval
                   '{_LAST_USED_RESOLUTION}')
            returning key_hash, scopes, expires_at""", key_id)
    if row is None:  # recently used (no write needed), revoked, expired or unknown
        row = await conn.fetchrow(
            f"""select key_hash, scopes, expires_at from {table}
                where id = $1 and revoked_at is null
                  and (expires_at is null or expires_at > now())""", key_id)
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), _hash(token)):
        raise Unauthenticated("invalid, expired or revoked API key")
    return row


async def authenticate_key(db: Database, token: str) -> Principal:
    parsed = _parse(token)
    if parsed is None:
        raise Unauthenticated("invalid, expired or revoked API key")
    tenant_id, key_id = parsed
    if tenant_id is None:
        async with db.hq_tx() as conn:
            row = await _check_key_row(conn, "hq_api_keys", key_id, token)
        return Principal(kind="hq_key", id=key_id, scopes=frozenset(row["scopes"]),
                         expires_at=row["expires_at"])
    async with db.pool.acquire() as conn, conn.transaction():
        tenant = await fetch_tenant(conn, tenant_id)
        if tenant is None:
            raise Unauthenticated("invalid, expired or revoked API key")
        await scope_to_tenant(conn, tenant_id)  # the key row is only visible in its tenant
        row = await _check_key_row(conn, "api_keys", key_id, token)
    if tenant.status != "active":
        raise Forbidden(f"tenant {tenant_id!r} is suspended")
    return Principal(kind="tenant_key", id=key_id, scopes=frozenset(row["scopes"]),
                     tenant_id=tenant_id, expires_at=row["expires_at"])
