"""Messaging: the outbox that is also the contact history, and every status change."""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T06:02:00:000000"

SQL = f"""
-- One row per (tenant, deterministic id): written `planned` before anything is sent, then
-- moved along by the dispatcher and by provider callbacks. Pressure caps and arbitration
-- count over it with set-based SQL, hence the flat columns and the indexes below.
-- No foreign key to customers on purpose (as for events): bulk planning of a campaign
-- inserts hundreds of thousands of rows and customer rows are never deleted.
create table messages (
    tenant_id text not null references tenants (id),
    id text not null,
    customer_id uuid not null,
    channel text not null,
    category text not null
        check (category in ('marketing', 'service', 'alert', 'transactional')),
    purpose text not null
        check (purpose in ('marketing', 'traffic_info', 'loyalty', 'service', 'transactional')),
    priority integer not null default 0,
    source_type text not null check (source_type in ('campaign', 'journey', 'transactional')),
    source_id text not null,
    step text not null default '',
    occurrence text not null default '',
    template_id text,
    locale text,
    status text not null default 'planned',
    status_reason text,
    error_code text,
    -- When the message may be sent; a transient failure pushes it to the retry time.
    scheduled_at timestamptz not null default now(),
    planned_at timestamptz not null default now(),
    attempts integer not null default 0,
    claim_token text,
    lease_until timestamptz,
    sent_at timestamptz,
    delivered_at timestamptz,
    opened_at timestamptz,
    clicked_at timestamptz,
    unsubscribed_at timestamptz,
    failed_at timestamptz,
    provider text,
    provider_message_id text,
    to_address text,
    tags text[] not null default '{{}}',
    -- Event properties the template renders (`event.*`).
    data jsonb not null default '{{}}',
    -- Hash of the request that created a transactional message: a replay with another
    -- body is refused.
    request_hash text,
    updated_at timestamptz not null default now(),
    primary key (tenant_id, id)
);
create index messages_customer_sent on messages (tenant_id, customer_id, sent_at);
create index messages_claim on messages (tenant_id, status, channel, scheduled_at);
-- Transactional messages and alerts go out before a campaign backlog: claimed first.
create index messages_claim_urgent on messages (tenant_id, channel, scheduled_at)
    where status = 'planned' and category in ('transactional', 'alert');
create index messages_provider_id on messages (tenant_id, provider_message_id)
    where provider_message_id is not null;
create index messages_source on messages (tenant_id, source_type, source_id);

create table message_events (
    tenant_id text not null,
    id bigint generated always as identity,
    message_id text not null,
    status text not null,
    at timestamptz not null default now(),
    reason text,
    details jsonb not null default '{{}}',
    primary key (tenant_id, id),
    foreign key (tenant_id, message_id) references messages (tenant_id, id)
);
create index message_events_message on message_events (tenant_id, message_id, id);

{tenant_isolation("messages", "message_events")}
{grant_runtime("messages")}
{grant_runtime("message_events", privileges="select, insert, delete")}
"""

forwards = sql_migration(ID, "messaging: outbox / contact history and status events", SQL)
