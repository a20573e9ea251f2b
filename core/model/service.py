"""The data dictionary, the tracking plan and the tenant's data settings.

HQ owns the core: builtin profile columns, HQ extension fields and core event types.
Tenants add their own fields and event types, never under a core name, and choose their
policies (unknown events, invalid properties, strict traits, future tolerance).
`load_data_config` reads everything ingestion needs in one round trip.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec

from core.audit.service import record, record_hq
from core.db import Connection, Database
from core.errors import Conflict, InvalidInput
from core.identity.keys import CURRENT_VERSION, Keys, StoredKey
from core.identity.rules import HQ_DEFAULT_RULES, IdentityOverlay, IdentityRules, effective_rules
from core.model.schemas import (
    DataSettings,
    DataSettingsUpdate,
    EventType,
    EventTypeCreate,
    FieldCreate,
    FieldDef,
    HqModel,
    HqModelUpdate,
    PropertySpec,
    TenantModel,
)
from core.model.validation import compile_properties
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import HqContext, TenantContext

_FIELD_COLS = "name, type, required, enum_values, description"


@dataclass(frozen=True)
class DataConfig:
    """A tenant's effective data model and policies, read at the start of a batch."""

    fields: dict[str, FieldDef]
    event_types: dict[str, dict[str, PropertySpec]]
    settings: DataSettings
    rules: IdentityRules
    overlay: IdentityOverlay
    stored_key: StoredKey
    """The suppression list's key as stored (salt, version): `suppression_key` derives it."""
    has_suppressions: bool
    has_quarantine: bool

    def suppression_key(self, keys: Keys) -> bytes:
        return keys.suppression_key(self.stored_key)

    @functools.cached_property
    def blocked_tuples(self) -> dict[str, tuple[str, ...]]:
        """Per kind, the extra blocked values as a hashable key for normalisation caches."""
        return {kind: tuple(values) for kind, values in self.rules.blocked.items()}

    @functools.cached_property
    def tolerance(self) -> timedelta:
        return timedelta(seconds=self.settings.future_tolerance_seconds)

    @functools.cached_property
    def identity_key(self) -> tuple:
        """Everything identifier normalisation depends on, hashable (cache key)."""
        return (tuple(sorted(self.blocked_tuples.items())),
                tuple(sorted((k, r.priority) for k, r in self.rules.kinds.items())))

    @functools.cached_property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(name for name, f in self.fields.items() if f.required)

    @functools.cached_property
    def caches(self) -> dict[str, Any]:
        """Handles on long-lived caches, found once per batch rather than once per item."""
        return {}

    @functools.cached_property
    def property_checks(self) -> dict[str, Callable[[dict[str, Any]], bool]]:
        """Per event type, a fast yes/no validity test (the detailed check runs on a no)."""
        return {name: compile_properties(specs) for name, specs in self.event_types.items()}


_CONFIG_SQL = """
select (select row_to_json(s) from (select unknown_events, invalid_properties, strict_traits,
                                           future_tolerance_seconds, updated_at
                                    from tenant_data_settings) s) as settings,
       (select identity_overlay from tenant_data_settings) as overlay,
       (select hash_salt from tenant_data_settings) as hash_salt,
       (select hash_key_version from tenant_data_settings) as hash_key_version,
       (select coalesce(json_agg(f), '[]') from (select name, type, required, enum_values,
               description, builtin from hq_core_fields) f) as core_fields,
       (select coalesce(json_agg(f), '[]') from (select name, type, required, enum_values,
               description from tenant_fields) f) as tenant_fields,
       (select coalesce(json_object_agg(name, properties), '{}') from hq_event_types)
           as core_events,
       (select coalesce(json_object_agg(name, properties), '{}') from tenant_event_types)
           as tenant_events,
       (select value from hq_data_policies where name = 'identity_rules') as hq_rules,
       exists (select 1 from suppressions) as has_suppressions,
       exists (select 1 from event_quarantine) as has_quarantine
"""


# Ingestion's transactions also run without JIT: their statements are thousands of index
# probes whose estimated cost (on the statistics a bulk load leaves) crosses jit_above_cost,
# and compiling them takes longer than running them.
_SHARED_LOCK = """, pg_advisory_xact_lock_shared($1, hashtext($2)) is null as locked,
                    set_config('jit', 'off', true) as jit"""


async def ensure_settings_row(conn: Connection, ctx: TenantContext) -> None:
    # The salt and version of the suppression list's key are created with the row and never
    # change: a new key could not match the hashes recorded by earlier erasures.
    await conn.execute(
        """insert into tenant_data_settings (tenant_id, hash_salt, hash_key_version)
           values ($1, $2, $3) on conflict (tenant_id) do nothing""",
        ctx.tenant_id, secrets.token_bytes(32), CURRENT_VERSION)


async def load_suppression_key(conn: Connection, ctx: TenantContext, keys: Keys) -> bytes:
    """The tenant's suppression-list hashing key (creating its settings row if needed)."""
    sql = "select hash_salt, hash_key_version from tenant_data_settings"
    row = await conn.fetchrow(sql)
    if row is None:
        await ensure_settings_row(conn, ctx)
        row = await conn.fetchrow(sql)
    return keys.suppression_key(StoredKey(ctx.tenant_id, bytes(row["hash_salt"]),
                                          row["hash_key_version"]))


async def load_data_config(conn: Connection, ctx: TenantContext, *,
                           shared_lock: tuple[int, str] | None = None) -> DataConfig:
    """`shared_lock` (class id, key): also takes that transaction-level advisory lock in
    shared mode (ingestion's identity lock) and turns JIT off for the transaction, in the
    same round trip."""
    if shared_lock is None:
        row = await conn.fetchrow(_CONFIG_SQL)
    else:
        row = await conn.fetchrow(_CONFIG_SQL + _SHARED_LOCK, *shared_lock)
    if row["settings"] is None:
        await ensure_settings_row(conn, ctx)
        row = await conn.fetchrow(_CONFIG_SQL)
    fields = {f["name"]: FieldDef(**f, scope="core") for f in row["core_fields"]}
    for f in row["tenant_fields"]:
        fields.setdefault(f["name"], FieldDef(**f, scope="tenant"))
    events = {**row["tenant_events"], **row["core_events"]}
    hq_rules = _hq_rules(row["hq_rules"])
    overlay = msgspec.convert(row["overlay"] or {}, IdentityOverlay)
    return DataConfig(
        fields=fields,
        event_types={name: msgspec.convert(props, dict[str, PropertySpec])
                     for name, props in events.items()},
        settings=msgspec.convert(row["settings"], DataSettings),
        rules=effective_rules(hq_rules, overlay),
        overlay=overlay,
        stored_key=StoredKey(ctx.tenant_id, bytes(row["hash_salt"]), row["hash_key_version"]),
        has_suppressions=row["has_suppressions"],
        has_quarantine=row["has_quarantine"],
    )


def _hq_rules(value: Any) -> IdentityRules:
    return HQ_DEFAULT_RULES if value is None else msgspec.convert(value, IdentityRules)


# -- HQ core model ------------------------------------------------------------------------


async def _core_fields(conn: Connection) -> list[FieldDef]:
    rows = await conn.fetch(f"select {_FIELD_COLS}, builtin from hq_core_fields order by name")
    return [FieldDef(**dict(r), scope="core") for r in rows]


async def _event_types(conn: Connection, table: str, scope: str) -> list[EventType]:
    rows = await conn.fetch(f"select name, description, properties from {table} order by name")
    return [EventType(name=r["name"], description=r["description"], scope=scope,  # type: ignore[arg-type]
                      properties=msgspec.convert(r["properties"], dict[str, PropertySpec]))
            for r in rows]


async def get_hq_model(db: Database) -> HqModel:
    async with db.hq_tx() as conn:
        return HqModel(fields=await _core_fields(conn),
                       event_types=await _event_types(conn, "hq_event_types", "core"))


def _check_field(field: FieldCreate, where: str) -> None:
    if field.type == "enum" and not field.enum_values:
        raise InvalidInput("an enum field needs enum_values", field=f"{where}.enum_values")
    if field.type != "enum" and field.enum_values:
        raise InvalidInput("enum_values only apply to enum fields", field=f"{where}.enum_values")


def _check_unique(names: list[str], section: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInput(f"{name!r} is listed twice", field=f"{section}[{i}].name")
        seen.add(name)


async def _tenants_using(db: Database, table: str, names: list[str]) -> list[str]:
    """HQ governance check across tenants (aggregate: which tenants, no rows)."""
    async with db.hq_tx() as conn:
        tenant_ids = [r["id"] for r in await conn.fetch("select id from tenants order by id")]

    async def count(conn: Connection, _tenant: str) -> int:
        return await conn.fetchval(
            f"select count(*) from {table} where name = any($1::text[])", names)

    found = await db.for_each_tenant(tenant_ids, count)
    return [t for t, n in found.items() if n]


async def put_hq_model(db: Database, hq: HqContext, data: HqModelUpdate) -> HqModel:
    if data.fields is not msgspec.UNSET:
        _check_unique([f.name for f in data.fields], "fields")
        for i, field in enumerate(data.fields):
            _check_field(field, f"fields[{i}]")
    if data.event_types is not msgspec.UNSET:
        _check_unique([e.name for e in data.event_types], "event_types")
    async with db.hq_tx() as conn:
        current = {f.name: f for f in await _core_fields(conn)}
    if data.fields is not msgspec.UNSET:
        given = {f.name: (i, f) for i, f in enumerate(data.fields)}
        for name, field in current.items():
            if field.builtin and name not in given:
                raise InvalidInput(f"builtin field {name!r} cannot be removed", field="fields")
            if field.builtin and given[name][1].type != field.type:
                raise InvalidInput(f"builtin field {name!r} is a {field.type} column",
                                   field=f"fields[{given[name][0]}].type")
        added = [n for n in given if n not in current]
        if added and (clash := await _tenants_using(db, "tenant_fields", added)):
            raise Conflict(f"tenants {', '.join(clash)} already define a field named "
                           f"{', '.join(added)}", field="fields", tenants=clash)
    if data.event_types is not msgspec.UNSET:
        names = [e.name for e in data.event_types]
        if clash := await _tenants_using(db, "tenant_event_types", names):
            raise Conflict(f"tenants {', '.join(clash)} define an event type with one of "
                           "these names", field="event_types", tenants=clash)
    async with db.hq_tx() as conn:
        if data.fields is not msgspec.UNSET:
            fields = data.fields
            await conn.execute("delete from hq_core_fields where not builtin "
                               "and name <> all($1::text[])", [f.name for f in fields])
            await conn.executemany(
                f"""insert into hq_core_fields ({_FIELD_COLS}) values ($1, $2, $3, $4, $5)
                    on conflict (name) do update set required = excluded.required,
                        enum_values = excluded.enum_values, description = excluded.description,
                        type = excluded.type, updated_at = now()""",
                [(f.name, f.type, f.required, f.enum_values, f.description) for f in fields])
        if data.event_types is not msgspec.UNSET:
            types = data.event_types
            await conn.execute("delete from hq_event_types where name <> all($1::text[])",
                               [e.name for e in types])
            await conn.executemany(
                """insert into hq_event_types (name, description, properties) values ($1, $2, $3)
                   on conflict (name) do update set description = excluded.description,
                       properties = excluded.properties, updated_at = now()""",
                [(e.name, e.description, msgspec.to_builtins(e.properties)) for e in types])
        await record_hq(conn, hq, "model.updated", "model", "core", msgspec.to_builtins(data))
        return HqModel(fields=await _core_fields(conn),
                       event_types=await _event_types(conn, "hq_event_types", "core"))


# -- tenant model -------------------------------------------------------------------------


async def get_tenant_model(db: Database, ctx: TenantContext) -> TenantModel:
    async with db.tenant_tx(ctx) as conn:
        config = await load_data_config(conn, ctx)
        core_types = await _event_types(conn, "hq_event_types", "core")
        local_types = await _event_types(conn, "tenant_event_types", "tenant")
    return TenantModel(fields=sorted(config.fields.values(), key=lambda f: f.name),
                       event_types=core_types + local_types, settings=config.settings)


async def list_fields(db: Database, ctx: TenantContext, *, cursor: str | None,
                      limit: int) -> Page[FieldDef]:
    check_limit(limit)
    after = decode_cursor(cursor, str) or ""
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select * from (
                  select {_FIELD_COLS}, builtin, 'core' as scope from hq_core_fields
                  union all
                  select {_FIELD_COLS}, false, 'tenant' from tenant_fields) f
                where name > $1 order by name limit $2""", after, limit + 1)
    return page_of([FieldDef(**dict(r)) for r in rows], limit, lambda f: f.name)


async def add_field(db: Database, ctx: TenantContext, data: FieldCreate) -> FieldDef:
    _check_field(data, "body")
    async with db.tenant_tx(ctx) as conn:
        if await conn.fetchval("select 1 from hq_core_fields where name = $1", data.name):
            raise Conflict(f"{data.name!r} is a core field owned by HQ; tenants cannot "
                           "redefine it", field="name")
        try:
            await conn.execute(
                f"insert into tenant_fields (tenant_id, {_FIELD_COLS}) values ($1,$2,$3,$4,$5,$6)",
                ctx.tenant_id, data.name, data.type, data.required, data.enum_values,
                data.description)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"field {data.name!r} already exists", field="name") from None
        await record(conn, ctx, "model.field_added", "field", data.name, msgspec.to_builtins(data))
    return FieldDef(name=data.name, type=data.type, required=data.required,
                    enum_values=data.enum_values, description=data.description, scope="tenant")


async def list_event_types(db: Database, ctx: TenantContext, *, cursor: str | None,
                           limit: int) -> Page[EventType]:
    check_limit(limit)
    after = decode_cursor(cursor, str) or ""
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            """select * from (
                 select name, description, properties, 'core' as scope from hq_event_types
                 union all
                 select name, description, properties, 'tenant' from tenant_event_types) e
               where name > $1 order by name limit $2""", after, limit + 1)
    types = [msgspec.convert(dict(r), EventType) for r in rows]
    return page_of(types, limit, lambda e: e.name)


async def add_event_type(db: Database, ctx: TenantContext, data: EventTypeCreate) -> EventType:
    for name, spec in data.properties.items():
        if spec.type == "enum" and not spec.values:
            raise InvalidInput("an enum property needs values", field=f"properties.{name}.values")
    async with db.tenant_tx(ctx) as conn:
        if await conn.fetchval("select 1 from hq_event_types where name = $1", data.name):
            raise Conflict(f"{data.name!r} is a core event type owned by HQ", field="name")
        try:
            await conn.execute(
                """insert into tenant_event_types (tenant_id, name, description, properties)
                   values ($1, $2, $3, $4)""",
                ctx.tenant_id, data.name, data.description, msgspec.to_builtins(data.properties))
        except asyncpg.UniqueViolationError:
            raise Conflict(f"event type {data.name!r} already exists", field="name") from None
        await record(conn, ctx, "model.event_type_added", "event_type", data.name,
                     msgspec.to_builtins(data))
    return EventType(name=data.name, description=data.description, properties=data.properties,
                     scope="tenant")


async def get_settings(db: Database, ctx: TenantContext) -> DataSettings:
    async with db.tenant_tx(ctx) as conn:
        return (await load_data_config(conn, ctx)).settings


async def update_settings(db: Database, ctx: TenantContext,
                          data: DataSettingsUpdate) -> DataSettings:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    async with db.tenant_tx(ctx) as conn:
        await ensure_settings_row(conn, ctx)
        if changes:
            sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=1))
            await conn.execute(f"update tenant_data_settings set {sets}, updated_at = now()",
                               *changes.values())
        await record(conn, ctx, "model.settings_updated", "data_settings", None, changes)
        return (await load_data_config(conn, ctx)).settings
