"""The tenant's side of OAuth: which partners may reach it, and the grants they hold."""

from __future__ import annotations

from datetime import datetime

from core.audit.service import record
from core.db import Connection, Database
from core.errors import InvalidInput, NotFound
from core.oauth.schemas import AccessPolicy, AccessPolicyUpdate, OAuthGrant
from core.oauth.store import revoke_grant
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import TenantContext

_GRANT_COLUMNS = """g.id, g.client_id, c.name as client_name, g.grant_type, g.subject,
    g.scopes, g.created_at, g.revoked_at, g.revoked_reason,
    (select count(*) from oauth_tokens t
      where t.tenant_id = g.tenant_id and t.grant_id = g.id and t.revoked_at is null
        and t.rotated_at is null and t.expires_at > now()) as active_tokens"""


async def get_policy(db: Database, ctx: TenantContext) -> AccessPolicy:
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            "select mode, allowed_clients, updated_at, updated_by from oauth_access_policies")
    if row is None:  # never set: every partner HQ registered may ask
        return AccessPolicy(tenant_id=ctx.tenant_id, mode="open", allowed_clients=[])
    return AccessPolicy(tenant_id=ctx.tenant_id, **dict(row))


async def set_policy(db: Database, ctx: TenantContext, data: AccessPolicyUpdate) -> AccessPolicy:
    """Switching to (or narrowing) an allow-list revokes, at once, every grant and token of
    the partners left out: restricting access must not wait for tokens to expire."""
    allowed = list(dict.fromkeys(data.allowed_clients))
    async with db.tenant_tx(ctx) as conn:
        known = {r["id"] for r in await conn.fetch(
            "select id from oauth_clients where id = any($1)", allowed)}
        for i, client_id in enumerate(data.allowed_clients):
            if client_id not in known:
                raise InvalidInput(f"client {client_id!r} not found",
                                   field=f"allowed_clients[{i}]")
        row = await conn.fetchrow(
            """insert into oauth_access_policies (tenant_id, mode, allowed_clients, updated_by)
               values ($1, $2, $3, $4)
               on conflict (tenant_id) do update
                 set mode = excluded.mode, allowed_clients = excluded.allowed_clients,
                     updated_at = now(), updated_by = excluded.updated_by
               returning mode, allowed_clients, updated_at, updated_by""",
            ctx.tenant_id, data.mode, allowed, ctx.actor.label)
        revoked = await _revoke_excluded(conn, allowed) if data.mode == "allowlist" else []
        await record(conn, ctx, "oauth.policy_updated", "oauth_policy", ctx.tenant_id,
                     {"mode": data.mode, "allowed_clients": allowed,
                      "revoked_grants": revoked})
    return AccessPolicy(tenant_id=ctx.tenant_id, **dict(row))


async def _revoke_excluded(conn: Connection, allowed: list[str]) -> list[str]:
    rows = await conn.fetch(
        """update oauth_grants set revoked_at = now(),
                  revoked_reason = 'partner removed by the tenant access policy'
           where revoked_at is null and client_id <> all($1) returning id""", allowed)
    await conn.execute(
        """update oauth_tokens set revoked_at = now()
           where revoked_at is null and client_id <> all($1)""", allowed)
    return sorted(r["id"] for r in rows)


async def list_grants(db: Database, ctx: TenantContext, *, cursor: str | None, limit: int,
                      client_id: str | None = None,
                      active: bool | None = None) -> Page[OAuthGrant]:
    """Newest first. `active`: only grants not revoked (True) or only revoked ones (False)."""
    check_limit(limit)
    after = decode_cursor(cursor, tuple[datetime, str])
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select {_GRANT_COLUMNS}
                from oauth_grants g join oauth_clients c on c.id = g.client_id
                where ($1::timestamptz is null or (g.created_at, g.id) < ($1, $2))
                  and ($3::text is null or g.client_id = $3)
                  and ($4::boolean is null or (g.revoked_at is null) = $4)
                order by g.created_at desc, g.id desc limit $5""",
            after[0] if after else None, after[1] if after else None, client_id, active,
            limit + 1)
    return page_of([OAuthGrant(**dict(r)) for r in rows], limit,
                   lambda g: [g.created_at, g.id])


async def get_grant(conn: Connection, grant_id: str) -> OAuthGrant | None:
    row = await conn.fetchrow(
        f"""select {_GRANT_COLUMNS} from oauth_grants g
            join oauth_clients c on c.id = g.client_id where g.id = $1""", grant_id)
    return OAuthGrant(**dict(row)) if row else None


async def revoke_grant_by_id(db: Database, ctx: TenantContext, grant_id: str) -> OAuthGrant:
    async with db.tenant_tx(ctx) as conn:
        if await get_grant(conn, grant_id) is None:
            raise NotFound(f"grant {grant_id!r} not found")
        await revoke_grant(conn, ctx, grant_id, "revoked by the tenant")
        return await get_grant(conn, grant_id)
