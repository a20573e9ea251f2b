"""Database access: one asyncpg pool, and the only two ways to open a transaction.

`tenant_tx(ctx)` sets `relais.tenant_id` with `set_config(..., true)` as the first statement
of the transaction, so the setting dies with the transaction and a pooled connection can
never carry one tenant's scope into another request. Row-level security does the rest.
`hq_tx()` opens a transaction with no tenant set: RLS then hides every tenant row, which
is what HQ-wide tables (tenants, HQ keys, canvas versions) need.

Piccolo runs the migrations (as the owner role); runtime SQL goes straight to asyncpg
because isolation depends on controlling exactly which connection and transaction a
statement runs in, and the hot paths are set-based SQL (unnest, COPY, ON CONFLICT).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from core.identity.keys import Keys
from core.settings import Settings
from tenants.context import TenantContext

T = TypeVar("T")
Connection = asyncpg.Connection


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def scope_to_tenant(conn: Connection, tenant_id: str) -> None:
    """Must run inside a transaction: the setting is transaction-local (`true`)."""
    await conn.execute("select set_config('relais.tenant_id', $1, true)", tenant_id)


async def fetch_first(conn: Connection, sql: str, *args: Any) -> asyncpg.Record | None:
    """The first row of a heavy read (a segment count, a scan of every profile), where
    `fetchrow`/`fetchval` would cost parallelism: they ask the server for at most one row,
    and PostgreSQL never runs a query in parallel when its portal has a row limit."""
    rows = await conn.fetch(sql, *args)
    return rows[0] if rows else None


class Database:
    def __init__(self, pool: asyncpg.Pool, keys: Keys | None = None) -> None:
        self.pool = pool
        # Derived from the deployment secret, which the database never sees: services that
        # hash for the suppression list take the tenant's key from here (`core.identity.keys`).
        self.keys = keys if keys is not None else Keys("")

    @classmethod
    async def connect(cls, settings: Settings, dsn: str | None = None) -> Database:
        pool = await asyncpg.create_pool(
            dsn or settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            init=_init_connection,
            # Statement cache stays on: RLS policies are re-checked per execution.
        )
        return cls(pool, Keys(settings.secret_key))

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def tenant_tx(self, ctx: TenantContext) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            await scope_to_tenant(conn, ctx.tenant_id)
            yield conn

    @asynccontextmanager
    async def hq_tx(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def for_each_tenant(
        self,
        tenant_ids: list[str],
        query: Callable[[Connection, str], Awaitable[T]],
    ) -> dict[str, T]:
        """The one HQ path across tenants: run `query` once per tenant, inside that tenant's
        RLS scope, in a single read-only transaction. Callers must return aggregates only."""
        results: dict[str, T] = {}
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            for tenant_id in tenant_ids:
                await scope_to_tenant(conn, tenant_id)
                results[tenant_id] = await query(conn, tenant_id)
        return results

    async def ping(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval("select 1")
