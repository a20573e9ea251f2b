"""The database catalog itself proves the isolation rules of DESIGN.md."""

from __future__ import annotations

import asyncpg
import pytest

from core.bootstrap import APP_ROLE


@pytest.fixture
async def owner(services):
    conn = await asyncpg.connect(services.owner_dsn)
    yield conn
    await conn.close()


async def _tenant_tables(conn) -> list[str]:
    rows = await conn.fetch(
        """select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
           join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id'
           where n.nspname = 'public' and c.relkind in ('r', 'p') and not a.attisdropped
           order by 1""")
    return [r["relname"] for r in rows]


async def test_every_tenant_table_has_forced_rls_and_a_policy(owner):
    tables = await _tenant_tables(owner)
    assert "api_keys" in tables and "audit_log" in tables
    rows = await owner.fetch(
        """select c.relname, c.relrowsecurity, c.relforcerowsecurity,
                  (select count(*) from pg_policy p where p.polrelid = c.oid) as policies
           from pg_class c where c.relname = any($1::text[])""", tables)
    problems = [r["relname"] for r in rows
                if not (r["relrowsecurity"] and r["relforcerowsecurity"] and r["policies"])]
    assert problems == [], f"tables without enabled+forced RLS and a policy: {problems}"


async def test_tenant_id_leads_every_key_and_foreign_key(owner):
    tables = await _tenant_tables(owner)
    rows = await owner.fetch(
        """select con.conrelid::regclass::text as tbl, con.conname, con.contype::text as contype,
                  (select attname from pg_attribute
                   where attrelid = con.conrelid and attnum = con.conkey[1]) as first_col,
                  exists (select 1 from unnest(con.conkey) k join pg_attribute a
                          on a.attrelid = con.conrelid and a.attnum = k
                          where a.attname = 'tenant_id') as has_tenant
           from pg_constraint con
           where con.contype in ('p', 'u', 'f') and con.conrelid::regclass::text = any($1)""",
        tables)
    bad_keys = [(r["tbl"], r["conname"]) for r in rows
                if r["contype"] in ("p", "u") and r["first_col"] != "tenant_id"]
    bad_fks = [(r["tbl"], r["conname"]) for r in rows
               if r["contype"] == "f" and not r["has_tenant"]]
    missing_pk = set(tables) - {r["tbl"] for r in rows if r["contype"] == "p"}
    assert bad_keys == [], f"keys not led by tenant_id: {bad_keys}"
    assert bad_fks == [], f"foreign keys without tenant_id: {bad_fks}"
    assert missing_pk == set(), f"tenant tables without a primary key: {missing_pk}"
    # Unique indexes created outside constraints must follow the rule too.
    idx = await owner.fetch(
        """select i.indexrelid::regclass::text as name, c.relname,
                  (select attname from pg_attribute where attrelid = c.oid
                   and attnum = i.indkey[0]) as first_col
           from pg_index i join pg_class c on c.oid = i.indrelid
           where i.indisunique and c.relname = any($1)""", tables)
    assert [r["name"] for r in idx if r["first_col"] != "tenant_id"] == []


async def test_runtime_role_owns_nothing_and_cannot_bypass_rls(owner):
    role = await owner.fetchrow(
        "select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb from pg_roles "
        "where rolname = $1", APP_ROLE)
    assert role is not None
    assert not any(role.values()), dict(role)
    owned = await owner.fetchval(
        """select count(*) from pg_class c join pg_roles r on r.oid = c.relowner
           where r.rolname = $1""", APP_ROLE)
    assert owned == 0
    members = await owner.fetch(
        """select r.rolname, r.rolbypassrls, r.rolsuper from pg_auth_members m
           join pg_roles r on r.oid = m.roleid join pg_roles u on u.oid = m.member
           where u.rolname = $1""", APP_ROLE)
    assert all(not m["rolbypassrls"] and not m["rolsuper"] for m in members)


async def test_rls_hides_other_tenants_rows_from_the_runtime_role(db, make_tenant, make_key):
    a, b = await make_tenant("rls"), await make_tenant("rls")
    await make_key(a.id)
    async with db.pool.acquire() as conn, conn.transaction():
        await conn.execute("select set_config('relais.tenant_id', $1, true)", b.id)
        seen = await conn.fetchval("select count(*) from api_keys where tenant_id = $1", a.id)
        assert seen == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                """insert into api_keys (tenant_id, id, name, key_hash, scopes, created_by)
                   values ($1, 'x', 'x', '\\x00', '{admin}', 'test')""", a.id)
    async with db.pool.acquire() as conn:  # no tenant set at all: nothing visible
        assert await conn.fetchval("select count(*) from api_keys") == 0


async def test_tenant_setting_does_not_outlive_its_transaction(db, make_tenant):
    tenant = await make_tenant("tx")
    async with db.pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("select set_config('relais.tenant_id', $1, true)", tenant.id)
        assert await conn.fetchval("select current_setting('relais.tenant_id', true)") in ("",
                                                                                          None)
