"""OAuth2 for partner tools: HQ client registry, per-tenant access policy, grants, codes
and tokens (issue #8)."""

from migrations.sql import grant_runtime, sql_migration, tenant_isolation

ID = "2026-11-24T08:01:00:000000"

SQL = f"""
-- HQ-wide: partner applications registered by HQ (a reference table under Citus).
-- Rows are disabled, never deleted, so tenant tables may name a client id without an FK.
create table oauth_clients (
    id text primary key,
    name text not null,
    client_type text not null check (client_type in ('confidential', 'public')),
    secret_hash bytea,
    redirect_uris text[] not null,
    scopes text[] not null,
    grant_types text[] not null,
    subject_tenant_id text references tenants (id),
    can_introspect boolean not null default false,
    created_at timestamptz not null default now(),
    created_by text not null,
    updated_at timestamptz not null default now(),
    secret_rotated_at timestamptz,
    disabled_at timestamptz,
    check ((client_type = 'public') = (secret_hash is null))
);

-- Tenant tables: tenant_id leads every key, RLS forced.
create table oauth_access_policies (
    tenant_id text not null references tenants (id),
    mode text not null check (mode in ('open', 'allowlist')),
    allowed_clients text[] not null default '{{}}',
    updated_at timestamptz not null default now(),
    updated_by text not null,
    primary key (tenant_id)
);

-- One row per authorisation (a consent, or one client-credentials issuance): every code and
-- token hangs off a grant, so revoking the grant revokes the whole refresh chain.
create table oauth_grants (
    tenant_id text not null references tenants (id),
    id text not null,
    client_id text not null,
    grant_type text not null,
    subject text not null,
    scopes text[] not null,
    created_at timestamptz not null default now(),
    revoked_at timestamptz,
    revoked_reason text,
    primary key (tenant_id, id)
);
create index oauth_grants_client on oauth_grants (tenant_id, client_id);

create table oauth_codes (
    tenant_id text not null references tenants (id),
    id text not null,
    code_hash bytea not null,
    grant_id text not null,
    client_id text not null,
    redirect_uri text,
    scopes text[] not null,
    code_challenge text,
    code_challenge_method text,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    used_at timestamptz,
    primary key (tenant_id, id),
    foreign key (tenant_id, grant_id) references oauth_grants (tenant_id, id)
);
create index oauth_codes_grant on oauth_codes (tenant_id, grant_id);

create table oauth_tokens (
    tenant_id text not null references tenants (id),
    id text not null,
    kind text not null check (kind in ('access', 'refresh')),
    token_hash bytea not null,
    grant_id text not null,
    client_id text not null,
    subject text not null,
    scopes text[] not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    rotated_at timestamptz,
    revoked_at timestamptz,
    primary key (tenant_id, id),
    foreign key (tenant_id, grant_id) references oauth_grants (tenant_id, id)
);
create index oauth_tokens_grant on oauth_tokens (tenant_id, grant_id);
create index oauth_tokens_client on oauth_tokens (tenant_id, client_id)
    where revoked_at is null;
create index oauth_tokens_expiry on oauth_tokens (tenant_id, expires_at);

{tenant_isolation("oauth_access_policies", "oauth_grants", "oauth_codes", "oauth_tokens")}

{grant_runtime("oauth_clients", privileges="select, insert, update")}
{grant_runtime("oauth_access_policies", "oauth_grants", "oauth_codes", "oauth_tokens")}
"""

forwards = sql_migration(ID, "oauth: clients, access policies, grants, codes, tokens", SQL)
