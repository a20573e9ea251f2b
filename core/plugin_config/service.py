"""Plugin governance (HQ) and per-tenant configuration.

effective configuration = HQ default ⊕ tenant values (HQ-locked fields keep HQ's value),
validated against the plugin's own msgspec schema. A plugin runs for a tenant only when
HQ allows it, the tenant enabled it and that merge validates. Secret fields are split off
before storage, encrypted (`SecretBox`) and never returned or logged: answers and audit
entries name the secret fields that changed, not their values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import asyncpg
import msgspec

from core.audit.service import record, record_hq
from core.db import Connection, Database
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.pagination import Page, check_limit, decode_cursor, page_of
from core.plugin_config.schemas import HqPlugin, HqPluginUpdate, TenantPlugin, TenantPluginPut
from core.plugin_config.secrets import SecretBox, plugin_binding
from core.plugin_config.validation import check_known, validate, validate_partial
from plugins.manager import PluginManager
from plugins.types import Component, PluginKind
from tenants.context import HqContext, TenantContext

_HQ_COLS = "plugin, allowed, default_config, default_secrets, locked, updated_at, updated_by"
_TENANT_COLS = "plugin, enabled, config, secrets, updated_at"


class _Split(msgspec.Struct):
    plain: dict[str, Any]
    secrets: dict[str, Any]
    cleared: set[str]


def _split(component: Component, values: Mapping[str, Any]) -> _Split:
    plain, secrets, cleared = {}, {}, set()
    for key, value in values.items():
        if key not in component.secret_fields:
            plain[key] = value
        elif value is None:
            cleared.add(key)
        else:
            secrets[key] = value
    return _Split(plain, secrets, cleared)


def _keep_secrets(stored: dict[str, Any], split: _Split) -> dict[str, Any]:
    """Secrets are write-only: a field left out of an update keeps its stored value."""
    kept = {k: v for k, v in stored.items() if k not in split.cleared}
    return kept | split.secrets


def _merge(hq: dict[str, Any], hq_secrets: dict[str, Any], tenant: dict[str, Any],
           tenant_secrets: dict[str, Any], locked: Collection[str]) -> dict[str, Any]:
    values = hq | hq_secrets | tenant | tenant_secrets
    for name in locked:
        if name in hq or name in hq_secrets:
            values[name] = hq.get(name, hq_secrets.get(name))
        else:
            values.pop(name, None)
    return values


# -- HQ --------------------------------------------------------------------------------

async def _hq_rows(conn: Connection, names: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        f"select {_HQ_COLS} from hq_plugin_settings where plugin = any($1::text[])", names)
    return {r["plugin"]: r for r in rows}


def _hq_plugin(plugins: PluginManager, name: str, row: asyncpg.Record | None,
               box: SecretBox | None) -> HqPlugin:
    info = plugins.info(name)
    if row is None:
        return HqPlugin(info=info)
    secrets = box.open(row["default_secrets"], plugin_binding(None, name)) if box else {}
    return HqPlugin(info=info, allowed=row["allowed"], default_config=row["default_config"],
                    default_secrets_set=sorted(secrets), locked=list(row["locked"]),
                    updated_at=row["updated_at"], updated_by=row["updated_by"])


async def list_hq_plugins(db: Database, plugins: PluginManager, box: SecretBox, *,
                          cursor: str | None, limit: int,
                          kind: PluginKind | None = None) -> Page[HqPlugin]:
    check_limit(limit)
    after = decode_cursor(cursor, str) or ""
    names = [n for n in plugins.names(kind) if n > after][:limit + 1]
    async with db.hq_tx() as conn:
        rows = await _hq_rows(conn, names)
    items = [_hq_plugin(plugins, n, rows.get(n), box) for n in names]
    return page_of(items, limit, lambda p: p.info.name)


async def get_hq_plugin(db: Database, plugins: PluginManager, box: SecretBox,
                        name: str) -> HqPlugin:
    plugins.get(name)
    async with db.hq_tx() as conn:
        rows = await _hq_rows(conn, [name])
    return _hq_plugin(plugins, name, rows.get(name), box)


async def put_hq_plugin(db: Database, hq: HqContext, plugins: PluginManager, box: SecretBox,
                        name: str, data: HqPluginUpdate) -> HqPlugin:
    component = plugins.component(name)
    validate_partial(component.config,
                     {k: v for k, v in data.default_config.items() if v is not None},
                     "default_config")
    check_known(component.config, data.locked, "locked")
    split = _split(component, data.default_config)
    binding = plugin_binding(None, name)
    async with db.hq_tx() as conn:
        current = (await _hq_rows(conn, [name])).get(name)
        stored = box.open(current["default_secrets"], binding) if current else {}
        secrets = _keep_secrets(stored, split)
        row = await conn.fetchrow(
            f"""insert into hq_plugin_settings (plugin, allowed, default_config,
                    default_secrets, locked, updated_by)
                values ($1, $2, $3, $4, $5, $6)
                on conflict (plugin) do update set allowed = excluded.allowed,
                    default_config = excluded.default_config,
                    default_secrets = excluded.default_secrets, locked = excluded.locked,
                    updated_at = now(), updated_by = excluded.updated_by
                returning {_HQ_COLS}""",
            name, data.allowed, split.plain, box.seal(secrets, binding), sorted(set(data.locked)),
            hq.actor.label)
        await record_hq(conn, hq, "plugin.governance_updated", "plugin", name, {
            "allowed": data.allowed, "default_config": split.plain, "locked": data.locked,
            "secrets_changed": sorted(split.secrets.keys() | split.cleared)})
    return _hq_plugin(plugins, name, row, box)


# -- tenant ----------------------------------------------------------------------------

class _State(msgspec.Struct):
    config: msgspec.Struct | None
    problem: str | None
    effective: dict[str, Any] | None


def _evaluate(component: Component, hq_row: asyncpg.Record | None,
              tenant_row: asyncpg.Record | None, box: SecretBox, tenant_id: str) -> _State:
    hq_plain = hq_row["default_config"] if hq_row else {}
    hq_secrets = box.open(hq_row["default_secrets"], plugin_binding(None, component.name)) \
        if hq_row else {}
    locked = hq_row["locked"] if hq_row else []
    plain = tenant_row["config"] if tenant_row else {}
    secrets = box.open(tenant_row["secrets"], plugin_binding(tenant_id, component.name)) \
        if tenant_row else {}
    merged = _merge(hq_plain, hq_secrets, plain, secrets, locked)
    effective = {k: v for k, v in merged.items() if k not in component.secret_fields}
    try:
        return _State(validate(component.config, merged), None, effective)
    except InvalidInput as exc:
        return _State(None, exc.detail, effective)


def _tenant_plugin(plugins: PluginManager, name: str, hq_row: asyncpg.Record | None,
                   tenant_row: asyncpg.Record | None, box: SecretBox,
                   tenant_id: str) -> TenantPlugin:
    component, registration = plugins.get(name).component, plugins.get(name).registration
    allowed = bool(hq_row and hq_row["allowed"])
    plugin = TenantPlugin(name=name, kind=component.kind, version=registration.version,
                          description=component.description, allowed=allowed,
                          configured=tenant_row is not None,
                          locked=list(hq_row["locked"]) if hq_row else [])
    if tenant_row is None:
        return plugin
    state = _evaluate(component, hq_row, tenant_row, box, tenant_id)
    secrets = box.open(tenant_row["secrets"], plugin_binding(tenant_id, name))
    plugin.enabled = tenant_row["enabled"]
    plugin.config = tenant_row["config"]
    plugin.secrets_set = sorted(secrets)
    plugin.effective_config = state.effective
    plugin.problem = state.problem if allowed else "HQ does not allow this plugin"
    plugin.updated_at = tenant_row["updated_at"]
    return plugin


async def _tenant_rows(conn: Connection, names: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        f"select {_TENANT_COLS} from plugin_configs where plugin = any($1::text[])", names)
    return {r["plugin"]: r for r in rows}


async def list_tenant_plugins(db: Database, ctx: TenantContext, plugins: PluginManager,
                              box: SecretBox, *, cursor: str | None, limit: int,
                              kind: PluginKind | None = None) -> Page[TenantPlugin]:
    """Every installed plugin with HQ's permission and this tenant's configuration."""
    check_limit(limit)
    after = decode_cursor(cursor, str) or ""
    names = [n for n in plugins.names(kind) if n > after][:limit + 1]
    async with db.tenant_tx(ctx) as conn:
        hq_rows, rows = await _hq_rows(conn, names), await _tenant_rows(conn, names)
    items = [_tenant_plugin(plugins, n, hq_rows.get(n), rows.get(n), box, ctx.tenant_id)
             for n in names]
    return page_of(items, limit, lambda p: p.name)


async def get_tenant_plugin(db: Database, ctx: TenantContext, plugins: PluginManager,
                            box: SecretBox, name: str) -> TenantPlugin:
    plugins.get(name)
    async with db.tenant_tx(ctx) as conn:
        hq_row, row = (await _hq_rows(conn, [name])).get(name), \
            (await _tenant_rows(conn, [name])).get(name)
    if row is None:
        raise NotFound(f"plugin {name!r} is not configured for this tenant")
    return _tenant_plugin(plugins, name, hq_row, row, box, ctx.tenant_id)


async def put_tenant_plugin(db: Database, ctx: TenantContext, plugins: PluginManager,
                            box: SecretBox, name: str, data: TenantPluginPut) -> TenantPlugin:
    component = plugins.component(name)
    check_known(component.config, data.config, "config")
    split = _split(component, data.config)
    binding = plugin_binding(ctx.tenant_id, name)
    async with db.tenant_tx(ctx) as conn:
        hq_row = (await _hq_rows(conn, [name])).get(name)
        if data.enabled and not (hq_row and hq_row["allowed"]):
            raise Forbidden(f"HQ does not allow tenants to enable plugin {name!r}",
                            field="enabled")
        for field in hq_row["locked"] if hq_row else ():
            hq_value = hq_row["default_config"].get(field)
            if field in data.config and data.config[field] != hq_value:
                raise InvalidInput(f"config.{field}: locked by HQ", field=f"config.{field}")
        current = (await _tenant_rows(conn, [name])).get(name)
        secrets = _keep_secrets(box.open(current["secrets"], binding) if current else {}, split)
        hq_secrets = box.open(hq_row["default_secrets"], plugin_binding(None, name)) \
            if hq_row else {}
        merged = _merge(hq_row["default_config"] if hq_row else {}, hq_secrets, split.plain,
                        secrets, hq_row["locked"] if hq_row else ())
        validate(component.config, merged)
        row = await conn.fetchrow(
            f"""insert into plugin_configs (tenant_id, plugin, enabled, config, secrets,
                                            updated_by)
                values ($1, $2, $3, $4, $5, $6)
                on conflict (tenant_id, plugin) do update set enabled = excluded.enabled,
                    config = excluded.config, secrets = excluded.secrets,
                    updated_at = now(), updated_by = excluded.updated_by
                returning {_TENANT_COLS}""",
            ctx.tenant_id, name, data.enabled, split.plain, box.seal(secrets, binding),
            ctx.actor.label)
        await record(conn, ctx, "plugin.configured", "plugin", name, {
            "enabled": data.enabled, "config": split.plain,
            "secrets_changed": sorted(split.secrets.keys() | split.cleared)})
    return _tenant_plugin(plugins, name, hq_row, row, box, ctx.tenant_id)


async def delete_tenant_plugin(db: Database, ctx: TenantContext, name: str) -> None:
    async with db.tenant_tx(ctx) as conn:
        deleted = await conn.fetchval(
            "delete from plugin_configs where plugin = $1 returning plugin", name)
        if deleted is None:
            raise NotFound(f"plugin {name!r} is not configured for this tenant")
        await record(conn, ctx, "plugin.removed", "plugin", name)


# -- runtime ---------------------------------------------------------------------------

async def enabled_configs(conn: Connection, ctx: TenantContext, plugins: PluginManager,
                          box: SecretBox, *,
                          kind: PluginKind | None = None) -> dict[str, msgspec.Struct]:
    """The validated configuration of every plugin this tenant may run now (allowed by HQ,
    enabled, valid), e.g. the rules for `PluginManager.check_eligibility`. Runs in the
    caller's tenant transaction."""
    rows = await conn.fetch(
        f"""select {_TENANT_COLS} from plugin_configs c
            where enabled and exists (select 1 from hq_plugin_settings h
                                      where h.plugin = c.plugin and h.allowed)""")
    installed = set(plugins.names(kind))
    tenant_rows = {r["plugin"]: r for r in rows if r["plugin"] in installed}
    hq_rows = await _hq_rows(conn, list(tenant_rows))
    configs = {}
    for name, row in tenant_rows.items():
        state = _evaluate(plugins.component(name), hq_rows.get(name), row, box, ctx.tenant_id)
        if state.config is not None:
            configs[name] = state.config
    return configs


async def require_enabled(conn: Connection, ctx: TenantContext, plugins: PluginManager,
                          box: SecretBox, name: str) -> msgspec.Struct:
    """The configuration `name` runs with for this tenant, or why it cannot run."""
    component = plugins.component(name)
    hq_row = (await _hq_rows(conn, [name])).get(name)
    row = (await _tenant_rows(conn, [name])).get(name)
    if not (hq_row and hq_row["allowed"]):
        raise Forbidden(f"HQ does not allow plugin {name!r}")
    if row is None or not row["enabled"]:
        raise Forbidden(f"plugin {name!r} is not enabled for this tenant: enable it with "
                        f"PUT /v1/tenants/{ctx.tenant_id}/plugins/{name}")
    state = _evaluate(component, hq_row, row, box, ctx.tenant_id)
    if state.config is None:
        raise Conflict(f"plugin {name!r} configuration is no longer valid: {state.problem}")
    return state.config
