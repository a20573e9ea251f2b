"""Overlays: effective = global definition ⊕ tenant overlay, validated against governance.

One mechanism for every kind of HQ-owned, tenant-tunable definition (registered today: the
lifecycle canvas, the pressure policy, the messaging policy; identity rules still keep
their own HQ document + tenant overlay in core/identity/rules.py, whose additive block
lists do not fit named parameters yet). A kind registers an `OverlayKind` once:
the msgspec type of its definition and a validator. HQ then publishes immutable numbered
versions (definition + parameters with their governance, see `tenants.governance`); each
tenant runs one version (the current one, or a pilot: `tenants.rollout`) and may store
overrides for the parameters governance lets it change. `effective_in` composes the three.

The definition refers to its tunable values by parameter name; what a reference means is
the kind's business (the canvas puts `{"param": "inactive_days"}` where a number goes).
See docs/overlays.md for a worked example.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from core.audit.service import record, record_hq
from core.db import Connection, Database
from core.errors import InvalidInput, NotFound
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import HqContext, TenantContext
from tenants.governance import (
    Mode,
    Parameter,
    ParamValue,
    check_declaration,
    check_override,
    violation,
)

Validator = Callable[[Database, Any, dict[str, Parameter]], Awaitable[None]]


@dataclass(frozen=True)
class OverlayKind:
    """How one kind of global definition is typed and checked.

    `await validate(db, definition, parameters)` raises `InvalidInput` with a `field` under
    `definition.` (or `parameters.`) when the definition is wrong, e.g. refers to an
    undeclared parameter. It runs when HQ publishes a version, and when a tenant changes
    its overrides (then each parameter's `default` is the tenant's value). `builtin()`
    returns the version-0 definition tenants run before HQ publishes anything (None: the
    kind has no effective value until then).
    """

    name: str
    definition_type: type
    validate: Validator | None = None
    builtin: Callable[[], VersionCreate] | None = None
    description: str = ""


_KINDS: dict[str, OverlayKind] = {}


def register_kind(kind: OverlayKind) -> OverlayKind:
    """Called once at import by the module owning the kind; re-registering replaces."""
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> OverlayKind:
    kind = _KINDS.get(name)
    if kind is None:
        raise NotFound(f"no overlay kind {name!r}")
    return kind


def registered_kinds() -> list[str]:
    return sorted(_KINDS)


# -- schemas ------------------------------------------------------------------------------

class VersionCreate(msgspec.Struct, forbid_unknown_fields=True):
    definition: Any
    parameters: dict[str, Parameter] = msgspec.field(default_factory=dict)
    notes: str = ""


class GlobalVersion(msgspec.Struct):
    kind: str
    version: int
    definition: dict[str, Any]
    parameters: dict[str, Parameter]
    notes: str
    created_at: datetime | None
    created_by: str


class OverlayUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The tenant's overrides, replacing the previous set (omit a parameter to go back to
    the HQ value)."""

    overrides: dict[str, ParamValue] = msgspec.field(default_factory=dict)


class Overlay(msgspec.Struct):
    kind: str
    tenant_id: str
    overrides: dict[str, Any]
    updated_at: datetime | None = None
    updated_by: str | None = None


class EffectiveParameter(msgspec.Struct, omit_defaults=True):
    name: str
    value: ParamValue
    default: ParamValue
    mode: Mode
    overridden: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[ParamValue] | None = None
    description: str = ""


class IgnoredOverride(msgspec.Struct):
    parameter: str
    value: Any
    reason: str


class Effective(msgspec.Struct):
    kind: str
    tenant_id: str
    version: int  # 0 = the built-in definition (HQ has published nothing yet)
    pilot: bool
    definition: dict[str, Any]
    parameters: dict[str, Any]
    governance: list[EffectiveParameter]
    ignored: list[IgnoredOverride]

    def typed(self, kind: OverlayKind | None = None) -> Any:
        return msgspec.convert(self.definition, (kind or get_kind(self.kind)).definition_type)


# -- versions (HQ) ------------------------------------------------------------------------

async def check_version(db: Database, kind: OverlayKind, data: VersionCreate) -> dict[str, Any]:
    """Validate a version body; returns the definition as plain JSON."""
    for name, param in data.parameters.items():
        field = f"parameters.{name}"
        if not name.replace("_", "").isalnum() or not name[:1].isalpha():
            raise InvalidInput(f"parameter name {name!r} must be letters, digits and _",
                               field=field)
        check_declaration(name, param, field)
    raw = msgspec.to_builtins(data.definition)
    try:
        typed = msgspec.convert(raw, kind.definition_type)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        raise InvalidInput(message, field="definition" + where.rstrip("`")) from None
    if kind.validate is not None:
        await kind.validate(db, typed, data.parameters)
    return msgspec.to_builtins(typed)


async def create_version(db: Database, hq: HqContext, kind_name: str,
                         data: VersionCreate) -> GlobalVersion:
    """Publish the next version. The very first version of a kind becomes current for
    every tenant; later ones wait to be piloted or propagated (`tenants.rollout`)."""
    kind = get_kind(kind_name)
    definition = await check_version(db, kind, data)
    async with db.hq_tx() as conn:
        await conn.execute("select pg_advisory_xact_lock(hashtext('overlay:' || $1))",
                           kind.name)
        version = await conn.fetchval(
            "select coalesce(max(version), 0) + 1 from overlay_versions where kind = $1",
            kind.name)
        await conn.execute(
            """insert into overlay_versions (kind, version, definition, notes, created_by)
               values ($1, $2, $3, $4, $5)""",
            kind.name, version, definition, data.notes, hq.actor.label)
        await conn.executemany(
            """insert into overlay_governance (kind, version, parameter, default_value, mode,
                   min_value, max_value, allowed, description)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            [(kind.name, version, name, p.default, p.mode, p.min, p.max, p.allowed,
              p.description) for name, p in data.parameters.items()])
        await conn.execute(
            """insert into overlay_rollouts (kind, current_version, updated_by)
               values ($1, $2, $3) on conflict (kind) do nothing""",
            kind.name, version, hq.actor.label)
        await record_hq(conn, hq, "overlay.version_published", kind.name, str(version),
                        {"notes": data.notes, "parameters": sorted(data.parameters)})
        return await load_version(conn, kind.name, version)


async def load_version(conn: Connection, kind_name: str, version: int) -> GlobalVersion:
    if version == 0:
        kind = get_kind(kind_name)
        if kind.builtin is None:
            raise NotFound(f"{kind_name} has no published version yet")
        data = kind.builtin()
        return GlobalVersion(kind=kind_name, version=0,
                             definition=msgspec.to_builtins(data.definition),
                             parameters=data.parameters, notes=data.notes or "built-in",
                             created_at=None, created_by="relais")
    row = await conn.fetchrow(
        """select kind, version, definition, notes, created_at, created_by
           from overlay_versions where kind = $1 and version = $2""", kind_name, version)
    if row is None:
        raise NotFound(f"{kind_name} version {version} not found")
    params = await conn.fetch(
        """select parameter, default_value, mode, min_value, max_value, allowed, description
           from overlay_governance where kind = $1 and version = $2 order by parameter""",
        kind_name, version)
    parameters = {
        p["parameter"]: Parameter(default=p["default_value"], mode=p["mode"],
                                  min=p["min_value"], max=p["max_value"],
                                  allowed=p["allowed"], description=p["description"])
        for p in params}
    return GlobalVersion(**dict(row), parameters=parameters)


async def get_version(db: Database, kind_name: str, version: int) -> GlobalVersion:
    get_kind(kind_name)
    async with db.hq_tx() as conn:
        return await load_version(conn, kind_name, version)


async def list_versions(db: Database, kind_name: str, *, cursor: str | None,
                        limit: int) -> Page[GlobalVersion]:
    get_kind(kind_name)
    check_limit(limit)
    before = decode_cursor(cursor, int)
    async with db.hq_tx() as conn:
        numbers = await conn.fetch(
            """select version from overlay_versions
               where kind = $1 and ($2::int is null or version < $2)
               order by version desc limit $3""", kind_name, before, limit + 1)
        versions = [await load_version(conn, kind_name, r["version"]) for r in numbers]
    return page_of(versions, limit, lambda v: v.version)


# -- running version, overlay, composition ----------------------------------------------

async def running_version(conn: Connection, kind_name: str, tenant_id: str) -> tuple[int, bool]:
    """(version, piloting) the tenant runs; version 0 when HQ has published nothing."""
    row = await conn.fetchrow(
        """select coalesce(p.version, r.current_version, 0) as version,
                  p.version is not null as pilot
           from (select 1) one
           left join overlay_rollouts r on r.kind = $1
           left join overlay_pilots p on p.kind = $1 and p.subject_tenant_id = $2""",
        kind_name, tenant_id)
    return row["version"], row["pilot"]


def compose(version: GlobalVersion, tenant_id: str, overrides: dict[str, Any], *,
            pilot: bool = False) -> Effective:
    """Pure: the effective definition of `version` with `overrides` applied. Overrides the
    version's governance refuses (locked, out of bounds, unknown) are ignored and listed,
    so a stricter new version never breaks a tenant that tuned the old one."""
    values: dict[str, Any] = {}
    governance: list[EffectiveParameter] = []
    ignored: list[IgnoredOverride] = []
    for name, param in sorted(version.parameters.items()):
        value, overridden = param.default, False
        if name in overrides:
            reason = violation(name, param, overrides[name])
            if reason is None:
                value, overridden = overrides[name], overrides[name] != param.default
            else:
                ignored.append(IgnoredOverride(name, overrides[name], reason))
        values[name] = value
        governance.append(EffectiveParameter(
            name=name, value=value, default=param.default, mode=param.mode,
            overridden=overridden, min=param.min, max=param.max, allowed=param.allowed,
            description=param.description))
    for name in sorted(set(overrides) - set(version.parameters)):
        ignored.append(IgnoredOverride(
            name, overrides[name], f"{name!r} is not a parameter of version {version.version}"))
    return Effective(kind=version.kind, tenant_id=tenant_id, version=version.version,
                     pilot=pilot, definition=version.definition, parameters=values,
                     governance=governance, ignored=ignored)


async def _stored_overrides(conn: Connection, tenant_id: str, kind_name: str) -> asyncpg.Record:
    return await conn.fetchrow(
        """select overrides, updated_at, updated_by from tenant_overlays
           where tenant_id = $1 and kind = $2""", tenant_id, kind_name)


async def effective_in(conn: Connection, tenant_id: str, kind_name: str) -> Effective:
    """For services already inside `db.tenant_tx(ctx)` (or `for_each_tenant`)."""
    get_kind(kind_name)
    number, pilot = await running_version(conn, kind_name, tenant_id)
    version = await load_version(conn, kind_name, number)
    row = await _stored_overrides(conn, tenant_id, kind_name)
    return compose(version, tenant_id, row["overrides"] if row else {}, pilot=pilot)


async def effective(db: Database, ctx: TenantContext, kind_name: str) -> Effective:
    async with db.tenant_tx(ctx) as conn:
        return await effective_in(conn, ctx.tenant_id, kind_name)


async def _check_tuned(db: Database, kind: OverlayKind, version: GlobalVersion,
                       overrides: dict[str, Any]) -> None:
    """Values within bounds one by one may still combine into an invalid definition."""
    tuned = {name: msgspec.structs.replace(p, default=overrides.get(name, p.default))
             for name, p in version.parameters.items()}
    try:
        await kind.validate(db, msgspec.convert(version.definition, kind.definition_type),
                            tuned)  # type: ignore[misc]
    except InvalidInput as exc:
        raise InvalidInput(f"with these overrides the {kind.name} is invalid: {exc.detail}",
                           field="overrides", definition_field=exc.field) from None


async def get_overlay(db: Database, ctx: TenantContext, kind_name: str) -> Overlay:
    get_kind(kind_name)
    async with db.tenant_tx(ctx) as conn:
        row = await _stored_overrides(conn, ctx.tenant_id, kind_name)
    if row is None:
        return Overlay(kind=kind_name, tenant_id=ctx.tenant_id, overrides={})
    return Overlay(kind=kind_name, tenant_id=ctx.tenant_id, **dict(row))


async def put_overlay(db: Database, ctx: TenantContext, kind_name: str,
                      data: OverlayUpdate) -> Effective:
    """Replace the tenant's overrides; every value must pass the governance of the version
    the tenant runs now, or the whole update is refused naming the parameter."""
    kind = get_kind(kind_name)
    async with db.tenant_tx(ctx) as conn:
        number, pilot = await running_version(conn, kind_name, ctx.tenant_id)
        version = await load_version(conn, kind_name, number)
        for name, value in data.overrides.items():
            param = version.parameters.get(name)
            if param is None:
                raise InvalidInput(
                    f"{name!r} is not a parameter of {kind_name} version {number} "
                    f"(parameters: {', '.join(sorted(version.parameters)) or 'none'})",
                    field=f"overrides.{name}")
            check_override(name, param, value, f"overrides.{name}")
        if kind.validate is not None and data.overrides:
            await _check_tuned(db, kind, version, data.overrides)
        await conn.execute(
            """insert into tenant_overlays (tenant_id, kind, overrides, updated_by)
               values ($1, $2, $3, $4)
               on conflict (tenant_id, kind) do update
               set overrides = excluded.overrides, updated_at = now(),
                   updated_by = excluded.updated_by""",
            ctx.tenant_id, kind_name, data.overrides, ctx.actor.label)
        await record(conn, ctx, "overlay.updated", "overlay", kind_name,
                     {"version": number, "overrides": data.overrides})
        return compose(version, ctx.tenant_id, data.overrides, pilot=pilot)


class KindVersion(msgspec.Struct):
    kind: str
    version: int
    pilot: bool


async def running_versions(db: Database, ctx: TenantContext) -> list[KindVersion]:
    """Every registered kind and the version this tenant runs: what a tenant reports."""
    async with db.tenant_tx(ctx) as conn:
        return [KindVersion(name, *await running_version(conn, name, ctx.tenant_id))
                for name in registered_kinds()]
