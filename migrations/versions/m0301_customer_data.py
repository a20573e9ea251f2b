# ruff: noqa: E501  (seeded JSON schemas read best one event type per line)
"""Customer data spine: data dictionary, event catalog, profiles, identifiers, events,
quarantine, consents and preferences, notes, merges, suppressions, ingest jobs."""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T03:01:00:000000"

_TENANT_TABLES = (
    "tenant_data_settings", "tenant_fields", "tenant_event_types", "customers",
    "identifiers", "events", "event_quarantine", "consents", "consent_history",
    "preferences", "transit_subscriptions", "customer_notes", "customer_merges",
    "suppressions", "ingest_jobs",
)

SQL = f"""
-- HQ-wide (reference tables under Citus) ------------------------------------------------
-- The core data dictionary. `builtin` rows describe real columns of `customers` (their type
-- is fixed); other core fields are HQ-wide extension fields stored in customers.attributes.
create table hq_core_fields (
    name text primary key check (name ~ '^[a-z][a-z0-9_]{{0,62}}$'),
    type text not null check (type in ('string', 'number', 'boolean', 'date', 'enum')),
    required boolean not null default false,
    enum_values text[],
    description text not null default '',
    builtin boolean not null default false,
    updated_at timestamptz not null default now()
);

-- The HQ tracking plan: core event types and their property schemas.
create table hq_event_types (
    name text primary key check (name ~ '^[a-z][a-z0-9_]{{0,62}}$'),
    description text not null default '',
    properties jsonb not null default '{{}}',
    updated_at timestamptz not null default now()
);

-- HQ data policies (e.g. `identity_rules`): one JSON document per name, validated by code.
create table hq_data_policies (
    name text primary key,
    value jsonb not null,
    updated_at timestamptz not null default now()
);

-- Tenant tables ------------------------------------------------------------------------
create table tenant_data_settings (
    tenant_id text not null references tenants (id),
    unknown_events text not null default 'reject' check (unknown_events in ('reject', 'quarantine')),
    invalid_properties text not null default 'reject'
        check (invalid_properties in ('reject', 'quarantine')),
    strict_traits boolean not null default false,
    future_tolerance_seconds integer not null default 300,
    identity_overlay jsonb not null default '{{}}',
    hash_salt bytea not null,
    updated_at timestamptz not null default now(),
    primary key (tenant_id)
);

create table tenant_fields (
    tenant_id text not null references tenants (id),
    name text not null check (name ~ '^[a-z][a-z0-9_]{{0,62}}$'),
    type text not null check (type in ('string', 'number', 'boolean', 'date', 'enum')),
    required boolean not null default false,
    enum_values text[],
    description text not null default '',
    created_at timestamptz not null default now(),
    primary key (tenant_id, name)
);

create table tenant_event_types (
    tenant_id text not null references tenants (id),
    name text not null check (name ~ '^[a-z][a-z0-9_]{{0,62}}$'),
    description text not null default '',
    properties jsonb not null default '{{}}',
    created_at timestamptz not null default now(),
    primary key (tenant_id, name)
);

create table customers (
    tenant_id text not null references tenants (id),
    id uuid not null,
    first_name text,
    last_name text,
    email text,
    phone text,
    language text,
    country text,
    birth_date date,
    postal_code text,
    stage text,
    attributes jsonb not null default '{{}}',
    -- survivorship bookkeeping: field -> [set_at, source, first_seen]
    field_meta jsonb not null default '{{}}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    merged_into uuid,
    erased_at timestamptz,
    primary key (tenant_id, id)
);
create index customers_stage on customers (tenant_id, stage) where merged_into is null;
create index customers_merged_into on customers (tenant_id, merged_into)
    where merged_into is not null;

create table identifiers (
    tenant_id text not null,
    kind text not null,
    value text not null,
    customer_id uuid not null,
    source text not null,
    -- 'active' identifiers resolve and merge; 'demoted' ones (over a per-kind limit)
    -- still resolve to their profile but never drive a merge.
    status text not null default 'active' check (status in ('active', 'demoted')),
    first_seen timestamptz not null default now(),
    last_seen timestamptz not null default now(),
    primary key (tenant_id, kind, value),
    foreign key (tenant_id, customer_id) references customers (tenant_id, id)
);
create index identifiers_customer on identifiers (tenant_id, customer_id);

-- Append-heavy, 10M rows per tenant. No FK to customers on purpose: customer rows are
-- never deleted (merges keep the merged-away row, erasure keeps a tombstone), and an FK
-- check per row would cost a large share of ingestion throughput.
create table events (
    tenant_id text not null,
    id bigint generated always as identity,
    message_id text not null,
    customer_id uuid not null,
    type text not null,
    occurred_at timestamptz not null,
    received_at timestamptz not null default now(),
    properties jsonb not null default '{{}}',
    source text not null,
    primary key (tenant_id, id),
    unique (tenant_id, message_id)
);
create index events_customer_type_time on events (tenant_id, customer_id, type, occurred_at);

create table event_quarantine (
    tenant_id text not null,
    id bigint generated always as identity,
    message_id text not null,
    type text not null,
    payload jsonb not null,
    reasons jsonb not null,
    source text not null,
    received_at timestamptz not null default now(),
    primary key (tenant_id, id),
    unique (tenant_id, message_id)
);

create table consents (
    tenant_id text not null,
    customer_id uuid not null,
    channel text not null,
    purpose text not null check (purpose in
        ('marketing', 'traffic_info', 'loyalty', 'service', 'transactional')),
    status text not null check (status in ('granted', 'denied', 'withdrawn')),
    legal_basis text not null,
    source text not null,
    proof text,
    updated_at timestamptz not null default now(),
    primary key (tenant_id, customer_id, channel, purpose),
    foreign key (tenant_id, customer_id) references customers (tenant_id, id)
);

create table consent_history (
    tenant_id text not null,
    id bigint generated always as identity,
    customer_id uuid not null,
    channel text not null,
    purpose text not null,
    status text not null,
    legal_basis text not null,
    source text not null,
    proof text,
    recorded_at timestamptz not null default now(),
    actor text not null,
    primary key (tenant_id, id),
    foreign key (tenant_id, customer_id) references customers (tenant_id, id)
);
create index consent_history_customer on consent_history (tenant_id, customer_id, id);

create table preferences (
    tenant_id text not null,
    customer_id uuid not null,
    channels text[] not null default '{{}}',
    language text,
    quiet_start time,
    quiet_end time,
    timezone text,
    updated_at timestamptz not null default now(),
    primary key (tenant_id, customer_id),
    foreign key (tenant_id, customer_id) references customers (tenant_id, id)
);

-- Subscriptions to transit lines / stops, indexed by ref so traffic alerts find their
-- audience with one set-based query.
create table transit_subscriptions (
    tenant_id text not null,
    customer_id uuid not null,
    kind text not null check (kind in ('line', 'stop')),
    ref text not null,
    created_at timestamptz not null default now(),
    primary key (tenant_id, customer_id, kind, ref),
    foreign key (tenant_id, customer_id) references customers (tenant_id, id)
);
create index transit_subscriptions_ref on transit_subscriptions (tenant_id, kind, ref);

create table customer_notes (
    tenant_id text not null,
    id bigint generated always as identity,
    customer_id uuid not null,
    author text not null,
    channel text not null check (channel in ('agency', 'call_centre', 'chat')),
    text text not null,
    created_at timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, customer_id) references customers (tenant_id, id)
);
create index customer_notes_customer on customer_notes (tenant_id, customer_id, created_at);

create table customer_merges (
    tenant_id text not null,
    id bigint generated always as identity,
    survivor_id uuid not null,
    merged_id uuid not null,
    reason jsonb not null,
    details jsonb not null default '{{}}',
    actor text not null,
    merged_at timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, survivor_id) references customers (tenant_id, id),
    foreign key (tenant_id, merged_id) references customers (tenant_id, id)
);
create index customer_merges_survivor on customer_merges (tenant_id, survivor_id, merged_at);
create index customer_merges_merged on customer_merges (tenant_id, merged_id);

-- Survives erasure: keyed hashes only, never the identifier itself.
create table suppressions (
    tenant_id text not null,
    kind text not null,
    value_hash text not null,
    reason text not null,
    created_at timestamptz not null default now(),
    primary key (tenant_id, kind, value_hash)
);

-- Durable payloads of asynchronous ingestion: the job reads its input from here, so a
-- worker restart loses nothing (items are idempotent by message_id / identifiers).
create table ingest_jobs (
    tenant_id text not null,
    id uuid not null,
    kind text not null check (kind in ('events', 'identify')),
    source text not null,
    status text not null default 'queued' check (status in ('queued', 'running', 'done', 'failed')),
    items jsonb not null,
    total integer not null,
    processed integer not null default 0,
    results jsonb,
    error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id, id)
);

{tenant_isolation(*_TENANT_TABLES)}

{grant_runtime("hq_core_fields", "hq_event_types", "hq_data_policies")}
{grant_runtime(*(t for t in _TENANT_TABLES if t not in ("consent_history", "customer_merges")))}
{grant_runtime("consent_history", "customer_merges", privileges="select, insert, update")}

-- Built-in core fields: the columns of `customers`.
insert into hq_core_fields (name, type, builtin, description) values
    ('first_name', 'string', true, 'Given name'),
    ('last_name', 'string', true, 'Family name'),
    ('email', 'string', true, 'Email address (normalised)'),
    ('phone', 'string', true, 'Phone number in E.164'),
    ('language', 'string', true, 'Preferred language (BCP 47)'),
    ('country', 'string', true, 'ISO 3166-1 alpha-2 country'),
    ('birth_date', 'date', true, 'Date of birth'),
    ('postal_code', 'string', true, 'Postal code');
-- The HQ tracking plan shipped with the platform (HQ edits it through the API).
insert into hq_event_types (name, description, properties) values
    ('trip_validated', 'A ticket or card validated on the network', '{{
        "line": {{"type": "string", "required": true}}, "stop": {{"type": "string"}},
        "mode": {{"type": "enum", "values": ["bus", "tram", "metro", "train", "ferry", "bike", "other"]}},
        "ticket_type": {{"type": "string"}}}}'),
    ('ticket_purchased', 'A ticket or pass bought', '{{
        "product": {{"type": "string", "required": true}},
        "amount": {{"type": "number", "required": true, "min": 0}}, "currency": {{"type": "string"}},
        "quantity": {{"type": "number", "min": 1}},
        "channel": {{"type": "enum", "values": ["web", "app", "agency", "vending_machine", "onboard", "other"]}}}}'),
    ('subscription_started', 'A subscription (pass) started', '{{
        "plan": {{"type": "string", "required": true}}, "amount": {{"type": "number", "min": 0}},
        "currency": {{"type": "string"}},
        "period": {{"type": "enum", "values": ["weekly", "monthly", "annual", "other"]}}}}'),
    ('subscription_renewed', 'A subscription renewed', '{{
        "plan": {{"type": "string", "required": true}}, "amount": {{"type": "number", "min": 0}},
        "currency": {{"type": "string"}},
        "period": {{"type": "enum", "values": ["weekly", "monthly", "annual", "other"]}}}}'),
    ('subscription_cancelled', 'A subscription cancelled', '{{
        "plan": {{"type": "string", "required": true}}, "reason": {{"type": "string"}}}}'),
    ('support_ticket_opened', 'A support request opened', '{{
        "ticket_id": {{"type": "string", "required": true}}, "topic": {{"type": "string"}},
        "channel": {{"type": "enum", "values": ["agency", "call_centre", "chat", "email", "web", "app", "social"]}}}}'),
    ('support_ticket_closed', 'A support request closed', '{{
        "ticket_id": {{"type": "string", "required": true}}, "resolution": {{"type": "string"}},
        "satisfied": {{"type": "boolean"}}}}'),
    ('nps_submitted', 'A Net Promoter Score answer', '{{
        "score": {{"type": "number", "required": true, "min": 0, "max": 10}},
        "comment": {{"type": "string"}}}}'),
    ('form_submitted', 'A web or app form submitted', '{{
        "form_id": {{"type": "string", "required": true}}, "fields": {{"type": "object"}}}}'),
    ('app_opened', 'The mobile app opened', '{{
        "app_version": {{"type": "string"}},
        "platform": {{"type": "enum", "values": ["ios", "android", "web"]}}}}'),
    ('cart_abandoned', 'A purchase started and not finished', '{{
        "cart_id": {{"type": "string"}}, "amount": {{"type": "number", "min": 0}},
        "items": {{"type": "number", "min": 0}}}}'),
    ('loyalty_points_earned', 'Loyalty points credited', '{{
        "points": {{"type": "number", "required": true}}, "balance": {{"type": "number"}},
        "reason": {{"type": "string"}}}}');
"""

forwards = sql_migration(ID, "customer data: profiles, identifiers, events, consents", SQL)
