"""Audit log: who did what, when, in which tenant.

Entries are written in the same transaction as the change they describe, so an audited
write and its entry commit or roll back together.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.audit.schemas import AuditEntry
from core.db import Connection, Database
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import HqContext, TenantContext

_COLUMNS = "id, at, actor_kind, actor_id, client_id, action, target_type, target_id, " \
           "request_id, details"


async def record(
    conn: Connection,
    ctx: TenantContext,
    action: str,
    target_type: str,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        """insert into audit_log (tenant_id, actor_kind, actor_id, client_id, action,
                                  target_type, target_id, request_id, details)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        ctx.tenant_id, ctx.actor.kind, ctx.actor.id, ctx.actor.client_id, action,
        target_type, target_id, ctx.request_id, details or {},
    )


async def record_many(
    conn: Connection,
    ctx: TenantContext,
    action: str,
    target_type: str,
    entries: list[tuple[str | None, dict[str, Any]]],
) -> None:
    """`record` for many targets of one action in one statement: (target_id, details)
    per entry, written in order (batch services audit each changed object)."""
    if not entries:
        return
    await conn.execute(
        """insert into audit_log (tenant_id, actor_kind, actor_id, client_id, action,
                                  target_type, target_id, request_id, details)
           select $1, $2, $3, $4, $5, $6, e.target_id, $7, e.details
           from unnest($8::text[], $9::jsonb[]) with ordinality as e(target_id, details, n)
           order by e.n""",
        ctx.tenant_id, ctx.actor.kind, ctx.actor.id, ctx.actor.client_id, action,
        target_type, ctx.request_id, [t for t, _ in entries], [d for _, d in entries],
    )


async def record_hq(
    conn: Connection,
    hq: HqContext,
    action: str,
    target_type: str,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
    subject_tenant_id: str | None = None,
) -> None:
    await conn.execute(
        """insert into hq_audit_log (actor_kind, actor_id, client_id, action, subject_tenant_id,
                                     target_type, target_id, request_id, details)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        hq.actor.kind, hq.actor.id, hq.actor.client_id, action, subject_tenant_id,
        target_type, target_id, hq.request_id, details or {},
    )


async def list_tenant_entries(
    db: Database, ctx: TenantContext, *, cursor: str | None, limit: int
) -> Page[AuditEntry]:
    check_limit(limit)
    after = decode_cursor(cursor, int)
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS} from audit_log
                where ($1::bigint is null or id < $1) order by id desc limit $2""",
            after, limit + 1,
        )
    entries = [AuditEntry(**dict(r), tenant_id=ctx.tenant_id) for r in rows]
    return page_of(entries, limit, lambda e: e.id)


async def list_hq_entries(
    db: Database, *, cursor: str | None, limit: int, tenant_id: str | None = None
) -> Page[AuditEntry]:
    check_limit(limit)
    after = decode_cursor(cursor, int)
    async with db.hq_tx() as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS}, subject_tenant_id as tenant_id from hq_audit_log
                where ($1::bigint is null or id < $1)
                  and ($3::text is null or subject_tenant_id = $3)
                order by id desc limit $2""",
            after, limit + 1, tenant_id,
        )
    return page_of([AuditEntry(**dict(r)) for r in rows], limit, lambda e: e.id)


async def purge_tenant_entries(
    db: Database, ctx: TenantContext, *, older_than_days: int, batch_size: int = 5000
) -> int:
    """Delete entries past retention in bounded batches (short transactions, no long
    locks). Idempotent: a re-run deletes whatever is still past the cut-off."""
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    total = 0
    while True:
        async with db.tenant_tx(ctx) as conn:
            deleted = await conn.fetchval(
                """with doomed as (select id from audit_log where at < $1 limit $2)
                   , gone as (delete from audit_log a using doomed d where a.id = d.id
                              returning 1)
                   select count(*) from gone""",
                cutoff, batch_size,
            )
        total += deleted
        if deleted < batch_size:
            return total
