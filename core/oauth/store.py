"""SQL for codes, grants and tokens (tenant tables), and access-token authentication.

Tokens are opaque: `<prefix>_<tenant>_<id>_<secret>`, 256-bit secrets, stored as SHA-256 of
the whole string (as API keys are). The tenant inside the token lets every lookup run in that
tenant's RLS scope; a token naming a tenant it was not issued in simply finds no row.

Loading is split from writing on purpose: `core.oauth.server` loads what a protocol request
needs (`load_*`), lets authlib decide synchronously, then applies the decision here in one
transaction whose conditional updates (`used_at is null`, `rotated_at is null`) are the real
guard against two concurrent uses of the same code or refresh token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import msgspec

from core.audit.service import record
from core.auth.schemas import Principal
from core.db import Connection, Database, scope_to_tenant
from core.errors import Forbidden, Unauthenticated
from core.oauth.clients import ClientRecord, fetch_client_record
from tenants.context import TenantContext
from tenants.schemas import Tenant
from tenants.service import fetch_tenant

ACCESS_PREFIX, REFRESH_PREFIX, CODE_PREFIX = "ro_", "rr_", "ra_"
ACCESS_TTL = 3600               # seconds; partners refresh or ask again
REFRESH_TTL = 30 * 24 * 3600    # a refresh chain lives 30 days past its last rotation
CODE_TTL = 300                  # RFC 6749 §4.1.2: short-lived, one use


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token(prefix: str, tenant_id: str) -> tuple[str, str]:
    token_id = secrets.token_hex(8)
    return token_id, f"{prefix}{tenant_id}_{token_id}_{secrets.token_urlsafe(32)}"


def parse_token(token: str) -> tuple[str, str, str] | None:
    """(prefix, tenant, id) of one of our codes or tokens, else None."""
    prefix = token[:3]
    if prefix not in (ACCESS_PREFIX, REFRESH_PREFIX, CODE_PREFIX):
        return None
    parts = token[3:].split("_", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return prefix, parts[0], parts[1]


class TenantAccess(msgspec.Struct, frozen=True):
    tenant: Tenant
    allows_client: bool  # the tenant's access policy lets this partner in


class CodeRecord(msgspec.Struct, frozen=True):
    tenant_id: str
    id: str
    grant_id: str
    client_id: str
    redirect_uri: str | None
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    subject: str
    used: bool
    expired: bool


class TokenRecord(msgspec.Struct, frozen=True):
    tenant_id: str
    id: str
    kind: str
    grant_id: str
    client_id: str
    subject: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    rotated: bool
    revoked: bool
    expired: bool
    client_disabled: bool


class Issued(msgspec.Struct):
    """Tokens authlib generated for one token response, not yet stored."""

    grant_type: str
    scopes: list[str]
    subject: str
    access_id: str
    access_token: str
    refresh_id: str | None = None
    refresh_token: str | None = None


async def _policy_allows(conn: Connection, client_id: str) -> bool:
    row = await conn.fetchrow("select mode, allowed_clients from oauth_access_policies")
    return row is None or row["mode"] == "open" or client_id in row["allowed_clients"]


async def load_context(db: Database, tenant_id: str | None, client_id: str | None, *,
                       code: str | None = None, token: str | None = None,
                       client_tenant: bool = False,
                       ) -> tuple[ClientRecord | None, TenantAccess | None,
                                  CodeRecord | None, TokenRecord | None]:
    """Everything a protocol request reads, in one transaction: the client, the tenant
    (`client_tenant`: the one the client is bound to) and whether its policy admits the
    client, and the code or token presented (if any)."""
    async with db.pool.acquire() as conn, conn.transaction(readonly=True):
        client = await fetch_client_record(conn, client_id) if client_id else None
        if client_tenant:
            tenant_id = client.tenant if client is not None else None
        tenant = await fetch_tenant(conn, tenant_id) if tenant_id else None
        if tenant is None:
            return client, None, None, None
        await scope_to_tenant(conn, tenant.id)
        access = TenantAccess(tenant, client is not None
                              and await _policy_allows(conn, client.id))
        code_rec = await _code(conn, code) if code else None
        token_rec = await _token(conn, token) if token else None
    return client, access, code_rec, token_rec


async def _code(conn: Connection, code: str) -> CodeRecord | None:
    parsed = parse_token(code)
    if parsed is None or parsed[0] != CODE_PREFIX:
        return None
    row = await conn.fetchrow(
        """select c.tenant_id, c.id, c.code_hash, c.grant_id, c.client_id, c.redirect_uri,
                  c.scopes, c.code_challenge, c.code_challenge_method, g.subject,
                  c.used_at is not null as used, c.expires_at <= now() as expired
           from oauth_codes c join oauth_grants g
             on g.tenant_id = c.tenant_id and g.id = c.grant_id
           where c.id = $1""", parsed[2])
    if row is None or not hmac.compare_digest(bytes(row["code_hash"]), token_hash(code)):
        return None
    fields = dict(row)
    del fields["code_hash"]
    return CodeRecord(**fields)


async def _token(conn: Connection, token: str) -> TokenRecord | None:
    parsed = parse_token(token)
    if parsed is None or parsed[0] == CODE_PREFIX:
        return None
    row = await conn.fetchrow(
        """select t.tenant_id, t.id, t.kind, t.token_hash, t.grant_id, t.client_id, t.subject,
                  t.scopes, t.created_at, t.expires_at, t.rotated_at is not null as rotated,
                  t.revoked_at is not null as revoked, t.expires_at <= now() as expired,
                  c.disabled_at is not null as client_disabled
           from oauth_tokens t join oauth_clients c on c.id = t.client_id
           where t.id = $1""", parsed[2])
    if row is None or not hmac.compare_digest(bytes(row["token_hash"]), token_hash(token)):
        return None
    fields = dict(row)
    del fields["token_hash"]
    return TokenRecord(**fields)


async def _new_grant(conn: Connection, ctx: TenantContext, client_id: str, grant_type: str,
                     subject: str, scopes: list[str]) -> str:
    grant_id = secrets.token_hex(8)
    await conn.execute(
        """insert into oauth_grants (tenant_id, id, client_id, grant_type, subject, scopes)
           values ($1, $2, $3, $4, $5, $6)""",
        ctx.tenant_id, grant_id, client_id, grant_type, subject, scopes)
    return grant_id


async def _insert_tokens(conn: Connection, ctx: TenantContext, grant_id: str, client_id: str,
                         issued: Issued) -> None:
    rows = [(ctx.tenant_id, issued.access_id, "access", token_hash(issued.access_token),
             grant_id, client_id, issued.subject, issued.scopes, ACCESS_TTL)]
    if issued.refresh_token is not None:
        rows.append((ctx.tenant_id, issued.refresh_id, "refresh",
                     token_hash(issued.refresh_token), grant_id, client_id, issued.subject,
                     issued.scopes, REFRESH_TTL))
    await conn.executemany(
        """insert into oauth_tokens (tenant_id, id, kind, token_hash, grant_id, client_id,
                                     subject, scopes, expires_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))""", rows)
    await record(conn, ctx, "oauth.token_issued", "oauth_grant", grant_id,
                 {"grant_type": issued.grant_type, "scopes": issued.scopes,
                  "access_token_id": issued.access_id,
                  "refresh_token_id": issued.refresh_id})


async def revoke_grant(conn: Connection, ctx: TenantContext, grant_id: str,
                       reason: str) -> bool:
    """Revokes a grant and every token of its chain; False when it was already revoked."""
    revoked = await conn.fetchval(
        """update oauth_grants set revoked_at = now(), revoked_reason = $2
           where id = $1 and revoked_at is null returning id""", grant_id, reason)
    await conn.execute(
        """update oauth_tokens set revoked_at = now()
           where grant_id = $1 and revoked_at is null""", grant_id)
    if revoked:
        await record(conn, ctx, "oauth.grant_revoked", "oauth_grant", grant_id,
                     {"reason": reason})
    return revoked is not None


async def save_consent(db: Database, ctx: TenantContext, client_id: str, subject: str,
                       scopes: list[str], code: str, redirect_uri: str | None,
                       challenge: str | None, challenge_method: str | None) -> str:
    """An admin approved: the grant and its one-use code. `ctx.actor` is the approver."""
    parsed = parse_token(code)
    assert parsed is not None and parsed[1] == ctx.tenant_id
    async with db.tenant_tx(ctx) as conn:
        grant_id = await _new_grant(conn, ctx, client_id, "authorization_code", subject, scopes)
        await conn.execute(
            """insert into oauth_codes (tenant_id, id, code_hash, grant_id, client_id,
                   redirect_uri, scopes, code_challenge, code_challenge_method, expires_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                       now() + make_interval(secs => $10))""",
            ctx.tenant_id, parsed[2], token_hash(code), grant_id, client_id, redirect_uri,
            scopes, challenge, challenge_method, CODE_TTL)
        await record(conn, ctx, "oauth.consent_granted", "oauth_grant", grant_id,
                     {"client_id": client_id, "scopes": scopes})
    return grant_id


async def redeem_code(db: Database, ctx: TenantContext, code: CodeRecord,
                      issued: Issued) -> bool:
    """Marks the code used and stores the tokens; False (and the grant revoked, RFC 6749
    §4.1.2) when the code had already been used."""
    async with db.tenant_tx(ctx) as conn:
        fresh = await conn.fetchval(
            """update oauth_codes set used_at = now()
               where id = $1 and used_at is null and expires_at > now() returning id""",
            code.id)
        if fresh is None:
            await revoke_grant(conn, ctx, code.grant_id, "authorization code reused")
            return False
        await _insert_tokens(conn, ctx, code.grant_id, code.client_id, issued)
    return True


async def issue_client_credentials(db: Database, ctx: TenantContext, client_id: str,
                                   issued: Issued) -> str:
    async with db.tenant_tx(ctx) as conn:
        grant_id = await _new_grant(conn, ctx, client_id, "client_credentials",
                                    issued.subject, issued.scopes)
        await _insert_tokens(conn, ctx, grant_id, client_id, issued)
    return grant_id


async def rotate_refresh(db: Database, ctx: TenantContext, old: TokenRecord,
                         issued: Issued) -> bool:
    """Retires the presented refresh token and stores the new pair; False (and the whole
    chain revoked) when that refresh token had already been rotated — someone replayed it."""
    async with db.tenant_tx(ctx) as conn:
        fresh = await conn.fetchval(
            """update oauth_tokens set rotated_at = now()
               where id = $1 and kind = 'refresh' and rotated_at is null
                 and revoked_at is null and expires_at > now() returning id""", old.id)
        if fresh is None:
            await revoke_grant(conn, ctx, old.grant_id, "refresh token reused")
            return False
        await _insert_tokens(conn, ctx, old.grant_id, old.client_id, issued)
    return True


async def revoke_chain(db: Database, ctx: TenantContext, grant_id: str, reason: str) -> None:
    async with db.tenant_tx(ctx) as conn:
        await revoke_grant(conn, ctx, grant_id, reason)


async def revoke_token(db: Database, ctx: TenantContext, token: TokenRecord) -> None:
    """RFC 7009 §2.1: revoking a refresh token revokes its grant (every access token issued
    from it); revoking an access token revokes just that token."""
    async with db.tenant_tx(ctx) as conn:
        if token.kind == "refresh":
            await revoke_grant(conn, ctx, token.grant_id, "refresh token revoked by client")
            return
        revoked = await conn.fetchval(
            """update oauth_tokens set revoked_at = now()
               where id = $1 and revoked_at is null returning id""", token.id)
        if revoked:
            await record(conn, ctx, "oauth.token_revoked", "oauth_token", token.id,
                         {"grant_id": token.grant_id})


def _invalid_token(description: str) -> Unauthenticated:
    # RFC 6750 §3.1: the resource server names the problem in WWW-Authenticate.
    return Unauthenticated(
        f"invalid OAuth access token: {description}",
        www_authenticate=f'Bearer realm="relais", error="invalid_token", '
                         f'error_description="{description}"')


async def authenticate_access_token(db: Database, token: str) -> Principal:
    """The OAuth counterpart of `core.auth.service.authenticate_key`: same Principal shape,
    so scopes, tenant scoping and audit attribution apply unchanged."""
    parsed = parse_token(token)
    if parsed is None or parsed[0] != ACCESS_PREFIX:
        raise _invalid_token("the access token is not recognised")
    async with db.pool.acquire() as conn, conn.transaction(readonly=True):
        tenant = await fetch_tenant(conn, parsed[1])
        if tenant is None:
            raise _invalid_token("the access token is not recognised")
        await scope_to_tenant(conn, tenant.id)
        found = await _token(conn, token)
    if found is None or found.kind != "access":
        raise _invalid_token("the access token is not recognised")
    if found.revoked or found.client_disabled:
        raise _invalid_token("the access token was revoked")
    if found.expired:
        raise _invalid_token("the access token expired")
    if tenant.status != "active":
        raise Forbidden(f"tenant {tenant.id!r} is suspended")
    return Principal(kind="oauth", id=found.id, scopes=frozenset(found.scopes),
                     tenant_id=tenant.id, client_id=found.client_id)


async def purge_expired(db: Database, ctx: TenantContext, *, keep_days: int,
                        batch_size: int = 5000) -> int:
    """Deletes codes and tokens expired (or revoked) more than `keep_days` ago, then the
    grants left with neither, in bounded batches. Idempotent. Not audited: it removes only
    credentials that can no longer authenticate anything."""
    total = 0
    statements = (
        """with doomed as (select id from oauth_codes
                           where expires_at < now() - make_interval(days => $1) limit $2)
           , gone as (delete from oauth_codes c using doomed d where c.id = d.id returning 1)
           select count(*) from gone""",
        """with doomed as (select id from oauth_tokens
                           where expires_at < now() - make_interval(days => $1)
                              or revoked_at < now() - make_interval(days => $1) limit $2)
           , gone as (delete from oauth_tokens t using doomed d where t.id = d.id returning 1)
           select count(*) from gone""",
        """with doomed as (select g.id from oauth_grants g
                           where coalesce(g.revoked_at, g.created_at)
                                 < now() - make_interval(days => $1)
                             and not exists (select 1 from oauth_tokens t
                                             where t.tenant_id = g.tenant_id
                                               and t.grant_id = g.id)
                             and not exists (select 1 from oauth_codes c
                                             where c.tenant_id = g.tenant_id
                                               and c.grant_id = g.id)
                           limit $2)
           , gone as (delete from oauth_grants g using doomed d where g.id = d.id returning 1)
           select count(*) from gone""",
    )
    for statement in statements:
        while True:
            async with db.tenant_tx(ctx) as conn:
                deleted = await conn.fetchval(statement, keep_days, batch_size)
            total += deleted
            if deleted < batch_size:
                break
    return total
