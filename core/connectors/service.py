"""Connector instances of a tenant: create, read, update, delete.

A tenant may create a connector of a type only while HQ allows the connector plugin and the
tenant has enabled it (`core.plugin_config`). The instance configuration is validated
against the connector's `Config` schema and its mapping against the tenant's data
dictionary and tracking plan; secret fields are encrypted and never returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from core.audit.service import record
from core.connectors.mapping import check_mapping
from core.connectors.schemas import Connector, ConnectorCreate, ConnectorUpdate
from core.db import Connection, Database
from core.errors import Conflict, InvalidInput, NotFound
from core.model.service import load_data_config
from core.pagination import Page, check_limit, decode_cursor, page_of
from core.plugin_config.secrets import SecretBox, connector_binding
from core.plugin_config.service import require_enabled
from core.plugin_config.validation import check_known, validate
from plugins.connectors import Connector as ConnectorImpl
from plugins.manager import PluginManager
from tenants.context import TenantContext

_COLS = ("id, type, name, source, config, secrets, status, schedule_minutes, next_run_at, "
         "checkpoint, created_at, updated_at")


@dataclass(frozen=True)
class Loaded:
    """A connector ready to run: its row, implementation and validated configurations."""

    row: asyncpg.Record
    impl: ConnectorImpl
    config: Any
    plugin_config: Any

    @property
    def id(self) -> str:
        return self.row["id"]

    @property
    def source(self) -> str:
        return self.row["source"]


def webhook_url(base_url: str, tenant_id: str, connector_id: str) -> str:
    return f"{base_url.rstrip('/')}/hooks/{tenant_id}/{connector_id}"


def _public(row: asyncpg.Record, impl: ConnectorImpl | None, box: SecretBox, tenant_id: str,
            base_url: str) -> Connector:
    secrets = box.open(row["secrets"], connector_binding(tenant_id, row["id"]))
    mode = impl.mode if impl is not None else "unavailable"
    return Connector(
        id=row["id"], type=row["type"], mode=mode, name=row["name"], source=row["source"],
        status=row["status"],
        config=row["config"],
        secrets_set=sorted(secrets), schedule_minutes=row["schedule_minutes"],
        next_run_at=row["next_run_at"], checkpoint=row["checkpoint"],
        webhook_url=webhook_url(base_url, tenant_id, row["id"]) if mode == "push" else None,
        created_at=row["created_at"], updated_at=row["updated_at"])


def _impl(plugins: PluginManager, type_: str) -> ConnectorImpl:
    try:
        return plugins.connector(type_).connector
    except NotFound:
        raise InvalidInput(f"no connector type {type_!r} is installed (see GET "
                           "/v1/hq/plugins?kind=connector)", field="type") from None


async def _validated(conn: Connection, ctx: TenantContext, impl: ConnectorImpl,
                     values: dict[str, Any], stored_secrets: dict[str, Any]) -> tuple[Any, dict,
                                                                                      dict]:
    """(config, plain values to store, secrets to store)."""
    check_known(impl.Config, values, "config")
    plain = {k: v for k, v in values.items() if k not in impl.secret_fields}
    secrets = {k: v for k, v in stored_secrets.items() if values.get(k, v) is not None}
    secrets |= {k: v for k, v in values.items() if k in impl.secret_fields and v is not None}
    config = validate(impl.Config, plain | secrets)
    mapping = getattr(config, "mapping", None)
    if mapping is not None:
        data = await load_data_config(conn, ctx)
        check_mapping(mapping, field_types={n: f.type for n, f in data.fields.items()},
                      event_types=set(data.event_types))
    stored = {k: v for k, v in msgspec.to_builtins(config).items()
              if k not in impl.secret_fields}
    return config, stored, secrets


def _schedule(impl: ConnectorImpl, minutes: int | None, plugin_config: Any) -> None:
    if minutes is None:
        return
    if impl.mode != "pull":
        raise InvalidInput("only pull connectors run on a schedule", field="schedule_minutes")
    least = getattr(plugin_config, "min_interval_minutes", 1)
    if minutes < least:
        raise InvalidInput(f"schedule_minutes must be at least {least} (set by the "
                           f"{impl.name} plugin configuration)", field="schedule_minutes")


async def create_connector(db: Database, ctx: TenantContext, plugins: PluginManager,
                           box: SecretBox, base_url: str, data: ConnectorCreate) -> Connector:
    impl = _impl(plugins, data.type)
    async with db.tenant_tx(ctx) as conn:
        plugin_config = await require_enabled(conn, ctx, plugins, box, data.type)
        _config, stored, secrets = await _validated(conn, ctx, impl, data.config, {})
        _schedule(impl, data.schedule_minutes, plugin_config)
        next_run = datetime.now(UTC) if data.schedule_minutes else None
        try:
            row = await conn.fetchrow(
                f"""insert into connectors (tenant_id, id, type, name, source, config, secrets,
                                            status, schedule_minutes, next_run_at)
                    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning {_COLS}""",
                ctx.tenant_id, data.id, data.type, data.name, data.source or data.id, stored,
                box.seal(secrets, connector_binding(ctx.tenant_id, data.id)), data.status,
                data.schedule_minutes, next_run)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"connector {data.id!r} already exists", field="id") from None
        await record(conn, ctx, "connector.created", "connector", data.id, {
            "type": data.type, "name": data.name, "config": stored,
            "secrets_set": sorted(secrets), "schedule_minutes": data.schedule_minutes})
    return _public(row, impl, box, ctx.tenant_id, base_url)


async def fetch_row(conn: Connection, connector_id: str, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(f"select {_COLS} from connectors where id = $1"
                              + (" for update" if lock else ""), connector_id)
    if row is None:
        raise NotFound(f"connector {connector_id!r} not found")
    return row


async def get_connector(db: Database, ctx: TenantContext, plugins: PluginManager,
                        box: SecretBox, base_url: str, connector_id: str) -> Connector:
    async with db.tenant_tx(ctx) as conn:
        row = await fetch_row(conn, connector_id)
    return _public(row, _installed(plugins, row["type"]), box, ctx.tenant_id, base_url)


def _installed(plugins: PluginManager, type_: str) -> ConnectorImpl | None:
    try:
        return plugins.connector(type_).connector
    except NotFound:
        return None  # the package was uninstalled: the row stays readable


async def list_connectors(db: Database, ctx: TenantContext, plugins: PluginManager,
                          box: SecretBox, base_url: str, *, cursor: str | None,
                          limit: int) -> Page[Connector]:
    check_limit(limit)
    after = decode_cursor(cursor, str) or ""
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(f"select {_COLS} from connectors where id > $1 order by id "
                                "limit $2", after, limit + 1)
    items = [_public(r, _installed(plugins, r["type"]), box, ctx.tenant_id, base_url)
             for r in rows]
    return page_of(items, limit, lambda c: c.id)


async def update_connector(db: Database, ctx: TenantContext, plugins: PluginManager,
                           box: SecretBox, base_url: str, connector_id: str,
                           data: ConnectorUpdate) -> Connector:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    async with db.tenant_tx(ctx) as conn:
        row = await fetch_row(conn, connector_id, lock=True)
        impl = _impl(plugins, row["type"])
        plugin_config = await require_enabled(conn, ctx, plugins, box, row["type"])
        binding = connector_binding(ctx.tenant_id, connector_id)
        stored, secrets_blob = row["config"], row["secrets"]
        details: dict[str, Any] = {k: v for k, v in changes.items() if k != "config"}
        if "config" in changes:
            _c, plain, secrets = await _validated(conn, ctx, impl, changes["config"],
                                                  box.open(row["secrets"], binding))
            stored = plain
            secrets_blob = box.seal(secrets, binding)
            details |= {"config": plain, "secrets_set": sorted(secrets)}
        minutes = changes.get("schedule_minutes", row["schedule_minutes"])
        _schedule(impl, minutes, plugin_config)
        next_run = row["next_run_at"] if minutes else None
        if minutes and (next_run is None or "schedule_minutes" in changes):
            next_run = datetime.now(UTC) + timedelta(minutes=minutes) \
                if row["next_run_at"] else datetime.now(UTC)
        updated = await conn.fetchrow(
            f"""update connectors set name = $2, config = $3, secrets = $4, status = $5,
                    schedule_minutes = $6, next_run_at = $7, updated_at = now()
                where id = $1 returning {_COLS}""",
            connector_id, changes.get("name", row["name"]), stored, secrets_blob,
            changes.get("status", row["status"]), minutes, next_run)
        await record(conn, ctx, "connector.updated", "connector", connector_id, details)
    return _public(updated, impl, box, ctx.tenant_id, base_url)


async def delete_connector(db: Database, ctx: TenantContext, connector_id: str) -> None:
    """Runs and their rejects go with it; ingested data stays (it belongs to profiles)."""
    async with db.tenant_tx(ctx) as conn:
        deleted = await conn.fetchval("delete from connectors where id = $1 returning id",
                                      connector_id)
        if deleted is None:
            raise NotFound(f"connector {connector_id!r} not found")
        await record(conn, ctx, "connector.deleted", "connector", connector_id)


async def load(conn: Connection, ctx: TenantContext, plugins: PluginManager, box: SecretBox,
               connector_id: str) -> Loaded:
    """The connector with its configurations, for a run. Fails when HQ withdrew the
    plugin, the tenant disabled it, or the stored configuration no longer validates."""
    row = await fetch_row(conn, connector_id)
    impl = _impl(plugins, row["type"])
    plugin_config = await require_enabled(conn, ctx, plugins, box, row["type"])
    secrets = box.open(row["secrets"], connector_binding(ctx.tenant_id, connector_id))
    config = validate(impl.Config, row["config"] | secrets)
    return Loaded(row=row, impl=impl, config=config, plugin_config=plugin_config)
