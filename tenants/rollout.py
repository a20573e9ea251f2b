"""Progressive rollout of global versions: pilot on chosen tenants, then propagate to all.

Per kind, `overlay_rollouts.current_version` is what every tenant runs; a row of
`overlay_pilots` makes one tenant run another version instead. Propagating a version makes
it current and ends the pilots of that version (those tenants simply keep running it);
pilots of other versions continue. Propagating an older version is how HQ rolls back.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from core.audit.service import record_hq
from core.db import Connection, Database
from core.errors import InvalidInput, NotFound
from tenants.context import HqContext
from tenants.overlay import IgnoredOverride, compose, get_kind, load_version


class PilotRequest(msgspec.Struct, forbid_unknown_fields=True):
    tenants: list[str]


class TenantVersion(msgspec.Struct):
    tenant_id: str
    version: int
    pilot: bool
    pilot_since: datetime | None = None


class OverlayConflict(msgspec.Struct):
    """A tenant override the version being rolled out will ignore."""

    tenant_id: str
    ignored: list[IgnoredOverride]


class Rollout(msgspec.Struct):
    kind: str
    current_version: int
    latest_version: int
    tenants: list[TenantVersion]
    conflicts: list[OverlayConflict] = msgspec.field(default_factory=list)


async def _ensure_version(conn: Connection, kind: str, version: int) -> None:
    if version == 0 or not await conn.fetchval(
            "select true from overlay_versions where kind = $1 and version = $2",
            kind, version):
        raise NotFound(f"{kind} version {version} not found")


async def _status(conn: Connection, kind: str) -> Rollout:
    row = await conn.fetchrow(
        """select (select current_version from overlay_rollouts where kind = $1) as current,
                  (select max(version) from overlay_versions where kind = $1) as latest""",
        kind)
    rows = await conn.fetch(
        """select t.id, coalesce(p.version, $2) as version, p.version is not null as pilot,
                  p.started_at
           from tenants t left join overlay_pilots p
                on p.kind = $1 and p.subject_tenant_id = t.id
           order by t.id""", kind, row["current"] or 0)
    return Rollout(kind=kind, current_version=row["current"] or 0,
                   latest_version=row["latest"] or 0,
                   tenants=[TenantVersion(r["id"], r["version"], r["pilot"], r["started_at"])
                            for r in rows])


async def rollout_status(db: Database, kind: str) -> Rollout:
    get_kind(kind)
    async with db.hq_tx() as conn:
        return await _status(conn, kind)


async def _conflicts(db: Database, kind: str, version: int,
                     tenant_ids: list[str]) -> list[OverlayConflict]:
    """Which tenants' overrides the version would ignore. Reads each tenant's overlay in
    its own RLS scope through the HQ path; only parameter names and values leave it."""
    async with db.hq_tx() as conn:
        target = await load_version(conn, kind, version)

    async def overrides_of(conn: Connection, tenant_id: str) -> dict:
        return await conn.fetchval(
            "select overrides from tenant_overlays where tenant_id = $1 and kind = $2",
            tenant_id, kind) or {}

    found = await db.for_each_tenant(tenant_ids, overrides_of)
    conflicts = []
    for tenant_id, overrides in found.items():
        ignored = compose(target, tenant_id, overrides).ignored
        if ignored:
            conflicts.append(OverlayConflict(tenant_id, ignored))
    return conflicts


async def start_pilot(db: Database, hq: HqContext, kind: str, version: int,
                      data: PilotRequest) -> Rollout:
    """Run `version` on the chosen tenants only; others stay on the current version."""
    get_kind(kind)
    if not data.tenants:
        raise InvalidInput("name at least one tenant to pilot on", field="tenants")
    async with db.hq_tx() as conn:
        await _ensure_version(conn, kind, version)
        known = {r["id"] for r in await conn.fetch(
            "select id from tenants where id = any($1::text[])", data.tenants)}
        for i, tenant_id in enumerate(data.tenants):
            if tenant_id not in known:
                raise InvalidInput(f"tenant {tenant_id!r} not found", field=f"tenants[{i}]")
        current = await conn.fetchval(
            "select current_version from overlay_rollouts where kind = $1", kind)
        if version == current:
            raise InvalidInput(f"version {version} is already current for every tenant",
                               field="version")
        await conn.execute(
            """insert into overlay_pilots (kind, subject_tenant_id, version, started_by)
               select $1, t, $2, $3 from unnest($4::text[]) t
               on conflict (kind, subject_tenant_id) do update
               set version = excluded.version, started_at = now(),
                   started_by = excluded.started_by""",
            kind, version, hq.actor.label, data.tenants)
        for tenant_id in data.tenants:
            await record_hq(conn, hq, "overlay.pilot_started", kind, str(version),
                            subject_tenant_id=tenant_id)
        status = await _status(conn, kind)
    status.conflicts = await _conflicts(db, kind, version, data.tenants)
    return status


async def end_pilot(db: Database, hq: HqContext, kind: str, tenant_id: str) -> Rollout:
    """The tenant goes back to the current version."""
    get_kind(kind)
    async with db.hq_tx() as conn:
        version = await conn.fetchval(
            """delete from overlay_pilots where kind = $1 and subject_tenant_id = $2
               returning version""", kind, tenant_id)
        if version is None:
            raise NotFound(f"tenant {tenant_id!r} is not piloting {kind}")
        await record_hq(conn, hq, "overlay.pilot_ended", kind, str(version),
                        subject_tenant_id=tenant_id)
        return await _status(conn, kind)


async def propagate(db: Database, hq: HqContext, kind: str, version: int) -> Rollout:
    """Make `version` current for every tenant (except pilots of other versions)."""
    get_kind(kind)
    async with db.hq_tx() as conn:
        await _ensure_version(conn, kind, version)
        previous = await conn.fetchval(
            "select current_version from overlay_rollouts where kind = $1", kind)
        await conn.execute(
            """insert into overlay_rollouts (kind, current_version, updated_by)
               values ($1, $2, $3) on conflict (kind) do update
               set current_version = excluded.current_version, updated_at = now(),
                   updated_by = excluded.updated_by""", kind, version, hq.actor.label)
        await conn.execute(
            "delete from overlay_pilots where kind = $1 and version = $2", kind, version)
        await record_hq(conn, hq, "overlay.propagated", kind, str(version),
                        {"previous_version": previous})
        status = await _status(conn, kind)
    on_version = [t.tenant_id for t in status.tenants if t.version == version]
    status.conflicts = await _conflicts(db, kind, version, on_version)
    return status
