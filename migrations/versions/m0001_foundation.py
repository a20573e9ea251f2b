"""Foundation: tenant registry, API keys, audit log, runtime grants."""

from migrations.sql import RUNTIME_ROLE, grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-23T23:00:00:000001"

SQL = f"""
-- HQ-wide tables (reference tables under Citus): no tenant_id column, no RLS.
create table tenants (
    id text primary key check (id ~ '^[a-z][a-z0-9-]{{1,39}}$'),
    name text not null,
    country char(2) not null,
    timezone text not null,
    default_locale text not null,
    locales text[] not null,
    status text not null default 'active' check (status in ('active', 'suspended')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table hq_api_keys (
    id text primary key,
    name text not null,
    key_hash bytea not null,
    scopes text[] not null,
    created_at timestamptz not null default now(),
    created_by text not null,
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz
);

create table hq_audit_log (
    id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    actor_kind text not null,
    actor_id text not null,
    client_id text,
    action text not null,
    subject_tenant_id text,
    target_type text not null,
    target_id text,
    request_id text,
    details jsonb not null default '{{}}'
);

-- Tenant tables: tenant_id leads every key, RLS forced.
create table api_keys (
    tenant_id text not null references tenants (id),
    id text not null,
    name text not null,
    key_hash bytea not null,
    scopes text[] not null,
    created_at timestamptz not null default now(),
    created_by text not null,
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    primary key (tenant_id, id)
);

create table audit_log (
    tenant_id text not null references tenants (id),
    id bigint generated always as identity,
    at timestamptz not null default now(),
    actor_kind text not null,
    actor_id text not null,
    client_id text,
    action text not null,
    target_type text not null,
    target_id text,
    request_id text,
    details jsonb not null default '{{}}',
    primary key (tenant_id, id)
);
create index audit_log_at on audit_log (tenant_id, at);

{tenant_isolation("api_keys", "audit_log")}

grant usage on schema public to {RUNTIME_ROLE};
{grant_runtime("tenants", "hq_api_keys", "api_keys", privileges="select, insert, update")}
{grant_runtime("hq_audit_log", "audit_log", privileges="select, insert, delete")}
"""

forwards = sql_migration(ID, "foundation: tenants, keys, audit", SQL)
