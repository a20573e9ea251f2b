"""Templates: HQ master templates (per channel, per locale), the shared layouts and partials
of the editorial charter, tenant variants/translations under an approval workflow, and the
tenant settings templates may print."""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T06:01:00:000000"

SQL = f"""
-- HQ-wide (reference tables under Citus) ------------------------------------------------
-- Shared Liquid sources usable with {{% render %}} / {{% include %}} and as layouts.
create table hq_template_partials (
    name text primary key check (name ~ '^[a-z][a-z0-9_-]{{0,62}}$'),
    source text not null,
    description text not null default '',
    revision integer not null default 1,
    updated_at timestamptz not null default now(),
    updated_by text not null
);

create table hq_templates (
    id text primary key check (id ~ '^[a-z][a-z0-9_-]{{1,62}}$'),
    name text not null,
    channel text not null check (channel in ('email', 'sms', 'whatsapp', 'push', 'webhook')),
    category text not null
        check (category in ('marketing', 'service', 'alert', 'transactional')),
    purpose text not null
        check (purpose in ('marketing', 'traffic_info', 'loyalty', 'service', 'transactional')),
    description text not null default '',
    -- 'locked': tenants run the HQ content as is; 'overridable': approved tenant variants
    -- replace it for their locale.
    governance text not null default 'overridable'
        check (governance in ('locked', 'overridable')),
    default_locale text not null,
    html_layout text,
    text_layout text,
    -- Empty: every tenant sees the template; otherwise only these pilots (progressive
    -- rollout: pilot on chosen tenants, then propagate by emptying the list).
    pilot_tenants text[] not null default '{{}}',
    revision integer not null default 1,
    created_at timestamptz not null default now(),
    created_by text not null,
    updated_at timestamptz not null default now(),
    updated_by text not null,
    archived_at timestamptz
);

create table hq_template_contents (
    template_id text not null references hq_templates (id),
    locale text not null,
    subject text,
    text text not null,
    html text,
    -- WhatsApp: the provider-approved template name and its body parameters (Liquid).
    provider_template text,
    params text[] not null default '{{}}',
    -- The template revision at which this locale last changed: tenant variants record the
    -- revision they translated, so an HQ edit marks them outdated.
    revision integer not null,
    updated_at timestamptz not null default now(),
    primary key (template_id, locale)
);

-- Tenant tables ------------------------------------------------------------------------
-- No foreign key to hq_templates: tenant keys must include tenant_id (Citus co-location);
-- the service checks the template exists and is visible to the tenant.
create table template_variants (
    tenant_id text not null references tenants (id),
    id uuid not null,
    template_id text not null,
    locale text not null,
    status text not null default 'draft'
        check (status in ('draft', 'submitted', 'approved', 'rejected', 'superseded')),
    subject text,
    text text not null,
    html text,
    provider_template text,
    params text[] not null default '{{}}',
    based_on_revision integer not null,
    comment text,
    created_at timestamptz not null default now(),
    created_by text not null,
    updated_at timestamptz not null default now(),
    submitted_at timestamptz,
    submitted_by text,
    decided_at timestamptz,
    decided_by text,
    primary key (tenant_id, id)
);
-- At most one variant in the works and one in use per template and locale.
create unique index template_variants_open on template_variants (tenant_id, template_id, locale)
    where status in ('draft', 'submitted');
create unique index template_variants_approved
    on template_variants (tenant_id, template_id, locale) where status = 'approved';
create index template_variants_by_template
    on template_variants (tenant_id, template_id, created_at);

-- Values templates print as `tenant.<name>` (postal address, support phone, sender name).
create table template_settings (
    tenant_id text not null references tenants (id),
    settings jsonb not null default '{{}}',
    updated_at timestamptz not null default now(),
    updated_by text not null,
    primary key (tenant_id)
);

{tenant_isolation("template_variants", "template_settings")}
{grant_runtime("hq_template_partials", "hq_templates", "hq_template_contents")}
{grant_runtime("template_variants", "template_settings", privileges="select, insert, update")}
"""

forwards = sql_migration(ID, "templates: HQ masters, partials, tenant variants, settings", SQL)
