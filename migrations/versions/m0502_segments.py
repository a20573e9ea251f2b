"""Segments: global (HQ) and local definitions, per-tenant refresh state, materialised
membership with entry and exit times."""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T05:02:00:000000"

SQL = f"""
-- HQ-wide: global segments exist in every tenant and are evaluated on each one's data.
create table hq_segments (
    id text primary key check (id ~ '^gseg_[a-z0-9]{{8,32}}$'),
    name text not null,
    description text not null default '',
    definition jsonb not null,
    refresh_minutes integer check (refresh_minutes between 5 and 10080),
    status text not null default 'active' check (status in ('active', 'archived')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    created_by text not null
);
create unique index hq_segments_name on hq_segments (lower(name)) where status = 'active';

create table segments (
    tenant_id text not null references tenants (id),
    id text not null check (id ~ '^seg_[a-z0-9]{{8,32}}$'),
    name text not null,
    description text not null default '',
    definition jsonb not null,
    refresh_minutes integer check (refresh_minutes between 5 and 10080),
    status text not null default 'active' check (status in ('active', 'archived')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    created_by text not null,
    primary key (tenant_id, id)
);
create unique index segments_name on segments (tenant_id, lower(name)) where status = 'active';

-- Refresh state of every segment (local or global) in one tenant.
create table segment_states (
    tenant_id text not null references tenants (id),
    segment_id text not null,
    member_count bigint not null default 0,
    refreshed_at timestamptz,
    duration_ms integer,
    primary key (tenant_id, segment_id)
);

-- One row per stint in a segment: entered_at, and exited_at once the customer left.
create table segment_memberships (
    tenant_id text not null,
    segment_id text not null,
    customer_id uuid not null,
    entered_at timestamptz not null,
    exited_at timestamptz,
    primary key (tenant_id, segment_id, customer_id, entered_at),
    foreign key (tenant_id, customer_id) references customers (tenant_id, id)
);
create unique index segment_memberships_current
    on segment_memberships (tenant_id, segment_id, customer_id) where exited_at is null;
create index segment_memberships_customer
    on segment_memberships (tenant_id, customer_id) where exited_at is null;

{tenant_isolation("segments", "segment_states", "segment_memberships")}
{grant_runtime("hq_segments", "segments", "segment_states", "segment_memberships")}
"""

forwards = sql_migration(ID, "segments: global and local definitions, membership", SQL)
