"""Overlays: versioned global definitions, their governance, progressive rollout (HQ-wide),
and the tenant overlays tuning them."""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T05:01:00:000000"

SQL = f"""
-- HQ-wide (reference tables under Citus) ------------------------------------------------
-- One row per published version of a global definition of some kind (`lifecycle_canvas`,
-- `pressure_policy`...). Versions are immutable: a change is a new version.
create table overlay_versions (
    kind text not null check (kind ~ '^[a-z][a-z0-9_]{{1,62}}$'),
    version integer not null check (version > 0),
    definition jsonb not null,
    notes text not null default '',
    created_at timestamptz not null default now(),
    created_by text not null,
    primary key (kind, version)
);

-- Governance of each parameter of a version: its default and how tenants may override it.
create table overlay_governance (
    kind text not null,
    version integer not null,
    parameter text not null,
    default_value jsonb not null,
    mode text not null check (mode in ('locked', 'overridable', 'bounded')),
    min_value double precision,
    max_value double precision,
    allowed jsonb,
    description text not null default '',
    primary key (kind, version, parameter),
    foreign key (kind, version) references overlay_versions (kind, version)
);

-- The version every tenant runs unless it pilots another one.
create table overlay_rollouts (
    kind text primary key,
    current_version integer not null,
    updated_at timestamptz not null default now(),
    updated_by text not null,
    foreign key (kind, current_version) references overlay_versions (kind, version)
);

-- Tenants piloting a version other than the current one.
create table overlay_pilots (
    kind text not null,
    subject_tenant_id text not null references tenants (id),
    version integer not null,
    started_at timestamptz not null default now(),
    started_by text not null,
    primary key (kind, subject_tenant_id),
    foreign key (kind, version) references overlay_versions (kind, version)
);

-- Tenant tables ------------------------------------------------------------------------
-- A tenant's overrides of one kind: parameter name -> value. Validated against the
-- governance of the version the tenant runs when written, and again when composed (a
-- rollout may tighten bounds: out-of-bounds values are then ignored and reported).
create table tenant_overlays (
    tenant_id text not null references tenants (id),
    kind text not null,
    overrides jsonb not null default '{{}}',
    updated_at timestamptz not null default now(),
    updated_by text not null,
    primary key (tenant_id, kind)
);

{tenant_isolation("tenant_overlays")}
{grant_runtime("overlay_versions", "overlay_governance", privileges="select, insert")}
{grant_runtime("overlay_rollouts", "overlay_pilots", "tenant_overlays")}
"""

forwards = sql_migration(ID, "overlays: global versions, governance, rollout, tenant overlays",
                         SQL)
