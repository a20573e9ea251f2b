"""Plugin governance (HQ) and per-tenant plugin configuration.

Config rows are keyed by (plugin, tenant or none): the "no tenant" row is HQ's — whether
tenants may enable the plugin, its default configuration and the fields HQ locks — and
lives in an HQ-wide table, because a tenant table cannot hold rows without a tenant under
forced RLS (and `tenant_id` must lead its primary key for Citus). Secrets are AES-GCM
ciphertexts (`core.plugin_config.secrets`), never plain values.
"""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T04:01:00:000000"

SQL = f"""
create table hq_plugin_settings (
    plugin text primary key,
    allowed boolean not null default false,
    default_config jsonb not null default '{{}}',
    default_secrets bytea,
    locked text[] not null default '{{}}',
    updated_at timestamptz not null default now(),
    updated_by text not null
);

create table plugin_configs (
    tenant_id text not null references tenants (id),
    plugin text not null,
    enabled boolean not null default true,
    config jsonb not null default '{{}}',
    secrets bytea,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    updated_by text not null,
    primary key (tenant_id, plugin)
);

{tenant_isolation("plugin_configs")}
{grant_runtime("hq_plugin_settings", "plugin_configs")}
"""

forwards = sql_migration(ID, "plugins: HQ governance and tenant configuration", SQL)
