"""Create the roles and the database Relais runs on, given a superuser connection.

Used by the embedded mode and the test suite; in production a DBA runs the equivalent
(see docs/operations.md). Three roles, so the runtime can never own or bypass anything:
- `relais_owner`  owns the schema; migrations run as it;
- `relais_runtime` NOLOGIN group holding the DML grants the migrations hand out;
- `relais_app`    the login the API and workers use: member of relais_runtime, not owner,
  not superuser, no BYPASSRLS.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

OWNER_ROLE = "relais_owner"
APP_ROLE = "relais_app"
RUNTIME_ROLE = "relais_runtime"


def dsn_for(admin_dsn: str, *, user: str, database: str) -> str:
    """Same server as `admin_dsn`, another user and database (keeps host/socket query)."""
    parts = urlsplit(admin_dsn)
    host = parts.hostname or ""
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, ""))


async def ensure_roles(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        existing = {r["rolname"] for r in await conn.fetch("select rolname from pg_roles")}
        if OWNER_ROLE not in existing:
            await conn.execute(f"create role {OWNER_ROLE} login nosuperuser nobypassrls")
        if RUNTIME_ROLE not in existing:
            await conn.execute(f"create role {RUNTIME_ROLE} nologin nosuperuser nobypassrls")
        if APP_ROLE not in existing:
            await conn.execute(
                f"create role {APP_ROLE} login nosuperuser nobypassrls nocreatedb nocreaterole"
            )
        await conn.execute(f"grant {RUNTIME_ROLE} to {APP_ROLE}")
    except asyncpg.UniqueViolationError:
        pass  # another process created the roles concurrently
    finally:
        await conn.close()


async def ensure_database(admin_dsn: str, database: str) -> tuple[str, str]:
    """Create `database` owned by the owner role if missing; return (owner_dsn, app_dsn)."""
    await ensure_roles(admin_dsn)
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", database)
        if not exists:
            await conn.execute(f'create database "{database}" owner {OWNER_ROLE}')
            db_conn = await asyncpg.connect(dsn_for(admin_dsn, user=_user(admin_dsn),
                                                    database=database))
            try:
                await db_conn.execute(f"alter schema public owner to {OWNER_ROLE}")
                await db_conn.execute("revoke create on schema public from public")
            finally:
                await db_conn.close()
    finally:
        await conn.close()
    return (
        dsn_for(admin_dsn, user=OWNER_ROLE, database=database),
        dsn_for(admin_dsn, user=APP_ROLE, database=database),
    )


async def drop_database(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'drop database if exists "{database}" with (force)')
    finally:
        await conn.close()


def _user(dsn: str) -> str:
    return urlsplit(dsn).username or "postgres"
