"""Data-source connectors, their sync runs (jobs with counters, progress, checkpoint) and
the rejected rows of each run (line, field, reason)."""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T04:02:00:000000"

SQL = f"""
create table connectors (
    tenant_id text not null references tenants (id),
    id text not null check (id ~ '^[a-z][a-z0-9-]{{1,62}}$'),
    type text not null,
    name text not null,
    -- the label ingested data carries (events.source, survivorship ranks)
    source text not null,
    config jsonb not null,
    secrets bytea,
    status text not null default 'active' check (status in ('active', 'paused')),
    -- pull connectors: sync every N minutes, and where the next sync starts.
    schedule_minutes integer check (schedule_minutes > 0),
    next_run_at timestamptz,
    checkpoint jsonb,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id, id)
);
create index connectors_due on connectors (tenant_id, next_run_at)
    where status = 'active' and schedule_minutes is not null;

create table connector_runs (
    tenant_id text not null,
    id text not null,
    connector_id text not null,
    trigger text not null check (trigger in ('upload', 'path', 'webhook', 'schedule',
                                              'manual')),
    status text not null default 'queued'
        check (status in ('queued', 'running', 'succeeded', 'failed')),
    source text not null default '',
    -- internal: where an uploaded or dropped file is read from (never exposed).
    file_path text,
    rows_read bigint not null default 0,
    rows_accepted bigint not null default 0,
    rows_rejected bigint not null default 0,
    progress real,
    -- where this run resumes if its job is restarted.
    checkpoint jsonb,
    error text,
    error_sample jsonb not null default '[]',
    attempts integer not null default 0,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    heartbeat_at timestamptz,
    finished_at timestamptz,
    primary key (tenant_id, id),
    foreign key (tenant_id, connector_id) references connectors (tenant_id, id)
        on delete cascade
);
create index connector_runs_by_connector
    on connector_runs (tenant_id, connector_id, created_at desc, id);

create table connector_rejects (
    tenant_id text not null,
    run_id text not null,
    line bigint not null,
    field text,
    reason text not null,
    primary key (tenant_id, run_id, line),
    foreign key (tenant_id, run_id) references connector_runs (tenant_id, id)
        on delete cascade
);

{tenant_isolation("connectors", "connector_runs", "connector_rejects")}
{grant_runtime("connectors", "connector_runs", "connector_rejects")}
"""

forwards = sql_migration(ID, "connectors, sync runs and rejected rows", SQL)
