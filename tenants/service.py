"""Tenant registry (HQ) and the construction of `TenantContext`."""

from __future__ import annotations

import re

import asyncpg
import msgspec

from core.audit.service import record_hq
from core.db import Connection, Database
from core.errors import Conflict, InvalidInput, NotFound
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import Actor, HqContext, TenantContext
from tenants.schemas import TENANT_SLUG, Tenant, TenantCreate, TenantStatus, TenantUpdate
from tenants.validation import check_country, check_locales, check_timezone

_COLUMNS = "id, name, country, timezone, default_locale, locales, status, created_at, updated_at"
RESERVED_IDS = frozenset({"hq", "admin", "system", "relais", "oauth", "v1"})


def _tenant(row: asyncpg.Record) -> Tenant:
    return Tenant(**dict(row))


async def fetch_tenant(conn: Connection, tenant_id: str) -> Tenant | None:
    row = await conn.fetchrow(f"select {_COLUMNS} from tenants where id = $1", tenant_id)
    return _tenant(row) if row else None


_SLUG = re.compile(TENANT_SLUG)


async def get_tenant(db: Database, tenant_id: str) -> Tenant:
    if not _SLUG.match(tenant_id):  # no such tenant can exist (nor reach the database: NUL)
        raise NotFound(f"tenant {tenant_id!r} not found")
    async with db.pool.acquire() as conn:  # one HQ-wide read: no transaction needed
        tenant = await fetch_tenant(conn, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    return tenant


def context_for(tenant: Tenant, actor: Actor, request_id: str | None = None) -> TenantContext:
    return TenantContext(
        tenant_id=tenant.id,
        timezone=tenant.timezone,
        country=tenant.country,
        default_locale=tenant.default_locale,
        locales=tuple(tenant.locales),
        actor=actor,
        request_id=request_id,
    )


async def tenant_context(
    db: Database, tenant_id: str, actor: Actor, request_id: str | None = None
) -> TenantContext:
    """For jobs and the CLI: rebuild the scope of a tenant from its id."""
    return context_for(await get_tenant(db, tenant_id), actor, request_id)


async def create_tenant(db: Database, hq: HqContext, data: TenantCreate) -> Tenant:
    if data.id in RESERVED_IDS:
        raise InvalidInput(f"{data.id!r} is reserved", field="id")
    check_country(data.country)
    check_timezone(data.timezone)
    default_locale, locales = check_locales(data.default_locale, data.locales)
    async with db.hq_tx() as conn:
        try:
            row = await conn.fetchrow(
                f"""insert into tenants (id, name, country, timezone, default_locale, locales)
                    values ($1, $2, $3, $4, $5, $6) returning {_COLUMNS}""",
                data.id, data.name, data.country, data.timezone, default_locale, locales,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"tenant {data.id!r} already exists", field="id") from None
        await record_hq(conn, hq, "tenant.created", "tenant", data.id,
                        msgspec.to_builtins(data), subject_tenant_id=data.id)
    return _tenant(row)


async def list_tenants(
    db: Database, *, cursor: str | None, limit: int, status: TenantStatus | None = None
) -> Page[Tenant]:
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.hq_tx() as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS} from tenants
                where ($1::text is null or id > $1) and ($2::text is null or status = $2)
                order by id limit $3""",
            after, status, limit + 1,
        )
    return page_of([_tenant(r) for r in rows], limit, lambda t: t.id)


async def list_tenant_ids(db: Database, *, status: TenantStatus | None = "active") -> list[str]:
    async with db.hq_tx() as conn:
        rows = await conn.fetch(
            "select id from tenants where ($1::text is null or status = $1) order by id", status
        )
    return [r["id"] for r in rows]


async def update_tenant(db: Database, hq: HqContext, tenant_id: str,
                        patch: TenantUpdate) -> Tenant:
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with db.hq_tx() as conn:
        current = await fetch_tenant(conn, tenant_id)
        if current is None:
            raise NotFound(f"tenant {tenant_id!r} not found")
        if "timezone" in changes:
            check_timezone(changes["timezone"])
        if "default_locale" in changes or "locales" in changes:
            default, locales = check_locales(
                changes.get("default_locale", current.default_locale),
                changes.get("locales", current.locales),
            )
            changes["default_locale"], changes["locales"] = default, locales
        if changes:
            names = list(changes)
            assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
            row = await conn.fetchrow(
                f"""update tenants set {assignments}, updated_at = now() where id = $1
                    returning {_COLUMNS}""",
                tenant_id, *changes.values(),
            )
            current = _tenant(row)
            await record_hq(conn, hq, "tenant.updated", "tenant", tenant_id,
                            {k: changes[k] for k in names}, subject_tenant_id=tenant_id)
    return current


async def set_status(db: Database, hq: HqContext, tenant_id: str,
                     status: TenantStatus) -> Tenant:
    async with db.hq_tx() as conn:
        row = await conn.fetchrow(
            f"""update tenants set status = $2, updated_at = now() where id = $1
                returning {_COLUMNS}""",
            tenant_id, status,
        )
        if row is None:
            raise NotFound(f"tenant {tenant_id!r} not found")
        action = "tenant.suspended" if status == "suspended" else "tenant.reactivated"
        await record_hq(conn, hq, action, "tenant", tenant_id, subject_tenant_id=tenant_id)
    return _tenant(row)
