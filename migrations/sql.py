"""Helpers for hand-written SQL migrations run by piccolo's migration engine.

Relais' tables need things piccolo's auto-migrations cannot express (composite primary keys
led by `tenant_id`, row-level security, policies), so every migration is raw SQL executed
inside the transaction piccolo opens for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

APP_NAME = "relais"
RUNTIME_ROLE = "relais_runtime"


def tenant_isolation(*tables: str) -> str:
    """RLS for tenant tables: enabled, forced (even for the owner) and scoped to the
    transaction-local `relais.tenant_id` setting."""
    statements = []
    for table in tables:
        statements.append(
            f"""
            alter table {table} enable row level security;
            alter table {table} force row level security;
            create policy tenant_isolation on {table}
                using (tenant_id = current_setting('relais.tenant_id', true))
                with check (tenant_id = current_setting('relais.tenant_id', true));
            """
        )
    return "\n".join(statements)


def grant_runtime(*tables: str, privileges: str = "select, insert, update, delete") -> str:
    return "\n".join(f"grant {privileges} on {table} to {RUNTIME_ROLE};" for table in tables)


def sql_migration(migration_id: str, description: str, sql: str) -> Callable[[], Awaitable]:
    async def execute() -> None:
        engine = engine_finder()
        transaction = engine.current_transaction.get()
        # asyncpg's execute() accepts several statements when given no arguments.
        await transaction.connection.execute(sql)

    async def forwards() -> MigrationManager:
        manager = MigrationManager(
            migration_id=migration_id, app_name=APP_NAME, description=description
        )
        manager.add_raw(execute)
        return manager

    return forwards
