"""Campaigns, their planning batches and per-recipient decisions, HQ campaign packages,
universal holdout groups, and the SQL functions planning shares with Python."""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T07:01:00:000000"

_TENANT_TABLES = ("holdout_groups", "campaigns", "campaign_batches", "campaign_recipients")

SQL = f"""
-- Functions (immutable, executable by everyone) -------------------------------------------
-- Holdout / control-group / variant bucket in 0..9999: first 8 bytes of SHA-256 of
-- "salt:subject" as a signed 64-bit integer, floor-modulo 10000. Python twin:
-- core.holdout.service.bucket.
create function relais_bucket(salt text, subject text) returns integer
language sql immutable strict parallel safe as $$
    select ((((('x' || substr(encode(sha256(convert_to(salt || ':' || subject, 'UTF8')),
                                        'hex'), 1, 16))::bit(64)::bigint) % 10000)
             + 10000) % 10000)::integer
$$;

-- Local start (a timestamp without time zone) of the calendar day / ISO week / month that
-- contains `at` in time zone `tz`. Python twin: core.pressure.windows.calendar_start.
create function relais_window_start(kind text, at timestamptz, tz text) returns timestamp
language sql immutable strict parallel safe as $$
    select date_trunc(kind, at at time zone tz)
$$;

-- End of the calendar window that starts at local `start`.
create function relais_window_end(kind text, start timestamp) returns timestamp
language sql immutable strict parallel safe as $$
    select start + case kind when 'day' then interval '1 day' when 'week' then interval '7 days'
                             else interval '1 month' end
$$;

-- `at` when it is outside the local quiet hours [qs, qe) (which may wrap midnight), else
-- the first instant after them. Python twin: core.pressure.windows.quiet_until.
create function relais_quiet_until(at timestamptz, tz text, qs time, qe time)
returns timestamptz language sql immutable parallel safe as $$
    select case
        when qs is null or qe is null or qs = qe then at
        when qs < qe then
            case when (at at time zone tz)::time >= qs and (at at time zone tz)::time < qe
                 then greatest(at, ((at at time zone tz)::date + qe) at time zone tz)
                 else at end
        when (at at time zone tz)::time >= qs
            then greatest(at, ((at at time zone tz)::date + 1 + qe) at time zone tz)
        when (at at time zone tz)::time < qe
            then greatest(at, ((at at time zone tz)::date + qe) at time zone tz)
        else at end
$$;

-- HQ-wide (reference tables under Citus) ------------------------------------------------
-- Campaigns HQ publishes for tenants to adopt and adapt.
create table campaign_packages (
    id text primary key check (id ~ '^[a-z][a-z0-9_-]{{1,62}}$'),
    campaign jsonb not null,
    description text not null default '',
    locked text[] not null default '{{}}',
    status text not null default 'published' check (status in ('published', 'archived')),
    revision integer not null default 1,
    created_at timestamptz not null default now(),
    created_by text not null,
    updated_at timestamptz not null default now()
);

-- Tenant tables ------------------------------------------------------------------------
-- Universal holdout groups: one active per tenant; a reset archives it (dates kept).
create table holdout_groups (
    tenant_id text not null references tenants (id),
    id uuid not null,
    salt text not null,
    percent numeric(5, 2) not null check (percent >= 0 and percent <= 50),
    buckets integer not null check (buckets between 0 and 5000),
    starts_at timestamptz not null,
    ends_at timestamptz not null,
    status text not null check (status in ('active', 'archived')),
    archived_at timestamptz,
    created_at timestamptz not null default now(),
    created_by text not null,
    notes text not null default '',
    primary key (tenant_id, id)
);
create unique index holdout_groups_active on holdout_groups (tenant_id)
    where status = 'active';

create table campaigns (
    tenant_id text not null references tenants (id),
    id uuid not null,
    name text not null,
    category text not null
        check (category in ('marketing', 'service', 'alert', 'transactional')),
    purpose text not null
        check (purpose in ('marketing', 'traffic_info', 'loyalty', 'service', 'transactional')),
    priority integer not null check (priority between 0 and 100),
    segment_id text not null,
    channels text[] not null,
    templates jsonb not null,
    schedule jsonb not null,
    variants jsonb not null default '[]',
    control_percent numeric(5, 2) not null default 0,
    quiet_hours text check (quiet_hours in ('delay', 'abort')),
    bypass_quiet_hours boolean not null default false,
    pressure_exempt boolean not null default false,
    tags text[] not null default '{{}}',
    data jsonb not null default '{{}}',
    package_id text,
    package_revision integer,
    status text not null default 'draft'
        check (status in ('draft', 'scheduled', 'running', 'completed', 'cancelled')),
    -- Salt of the control group and variant buckets (fixed at creation: a re-plan after a
    -- crash draws the same groups).
    salt text not null,
    -- The instant planning took as "now" (kind now) or the scheduled instant (kind at).
    send_at timestamptz,
    policy_version integer,
    audience_size integer,
    batches_total integer,
    batches_done integer not null default 0,
    planned integer not null default 0,
    excluded integer not null default 0,
    plan_error text,
    created_at timestamptz not null default now(),
    created_by text not null,
    updated_at timestamptz not null default now(),
    scheduled_at timestamptz,
    started_at timestamptz,
    planned_at timestamptz,
    completed_at timestamptz,
    cancelled_at timestamptz,
    primary key (tenant_id, id)
);
create index campaigns_status on campaigns (tenant_id, status);
create index campaigns_created on campaigns (tenant_id, created_at, id);

-- The audience snapshot, cut into batches; a batch is decided in one transaction.
create table campaign_batches (
    tenant_id text not null,
    campaign_id uuid not null,
    batch integer not null,
    customer_ids uuid[] not null,
    status text not null default 'pending' check (status in ('pending', 'done')),
    planned integer not null default 0,
    excluded integer not null default 0,
    finished_at timestamptz,
    primary key (tenant_id, campaign_id, batch),
    foreign key (tenant_id, campaign_id) references campaigns (tenant_id, id)
);

-- One decision per recipient: the funnel step where the customer left (or `planned`) and
-- why, per channel. Written set-based, once per batch; `displaced` rows are planned
-- messages a higher-priority campaign later took the place of.
create table campaign_recipients (
    tenant_id text not null,
    campaign_id uuid not null,
    customer_id uuid not null,
    step text not null,
    reason text,
    channel text,
    variant text,
    scheduled_at timestamptz,
    delayed_from timestamptz,
    message_id text,
    channels jsonb not null default '{{}}',
    decided_at timestamptz not null default now(),
    primary key (tenant_id, campaign_id, customer_id),
    foreign key (tenant_id, campaign_id) references campaigns (tenant_id, id)
);
create index campaign_recipients_step on campaign_recipients
    (tenant_id, campaign_id, step, reason);

{tenant_isolation(*_TENANT_TABLES)}
{grant_runtime("campaign_packages", privileges="select, insert, update")}
{grant_runtime(*_TENANT_TABLES)}
"""

forwards = sql_migration(ID, "campaigns, batches, recipients, packages, holdout groups", SQL)
