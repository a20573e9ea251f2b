"""Lifecycle evaluation runs: which canvas version assigned stages, when, how many
changed, and the event watermark incremental runs continue from."""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T05:03:00:000000"

SQL = f"""
create table lifecycle_runs (
    tenant_id text not null references tenants (id),
    id bigint generated always as identity,
    mode text not null check (mode in ('full', 'incremental')),
    canvas_version integer not null,
    status text not null default 'running' check (status in ('running', 'done', 'failed')),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    evaluated bigint not null default 0,
    changed bigint not null default 0,
    -- highest events.id taken into account; the next incremental run starts after it
    event_watermark bigint not null default 0,
    error text,
    primary key (tenant_id, id)
);

{tenant_isolation("lifecycle_runs")}
{grant_runtime("lifecycle_runs")}
"""

forwards = sql_migration(ID, "lifecycle: evaluation runs", SQL)
