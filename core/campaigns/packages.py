"""HQ campaign packages: a campaign HQ publishes once, that each tenant adopts as its own
draft and adapts where the package allows (local template or translation, local date...).

The central/local split of the seeds: category, purpose and exemptions always stay HQ's;
`locked` lists what else a tenant may not change. An adopted campaign remembers its package
and revision, and later edits of that draft respect the same locks.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from core.audit.service import record, record_hq
from core.campaigns import rules
from core.campaigns.schemas import (
    Adoption,
    Campaign,
    CampaignFields,
    Package,
    PackageCreate,
    PackageUpdate,
)
from core.campaigns.service import check_definition, insert
from core.db import Connection, Database
from core.errors import Conflict, InvalidInput, NotFound
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import HqContext, TenantContext

ALWAYS_HQ = ("category", "purpose", "pressure_exempt", "bypass_quiet_hours")
_COLUMNS = "id, campaign, description, locked, status, revision, created_at, created_by, " \
           "updated_at"


def _package(row: asyncpg.Record) -> Package:
    values: dict[str, Any] = dict(row)
    values["locked"] = list(values["locked"])
    return msgspec.convert(values, Package)


async def _check(conn: Connection, data: CampaignFields, field: str = "campaign") -> None:
    rules.check_fields(data)
    if not await conn.fetchval(
            "select true from hq_segments where id = $1 and status = 'active'",
            data.segment_id):
        raise InvalidInput(f"global segment {data.segment_id!r} not found",
                           field=f"{field}.segment_id")
    ids = {*data.templates.values(), *(t for v in data.variants for t in v.templates.values())}
    found = {r["id"]: r["channel"] for r in await conn.fetch(
        "select id, channel from hq_templates where id = any($1::text[]) "
        "and archived_at is null", list(ids))}
    for channel, template_id in data.templates.items():
        if found.get(template_id) != channel:
            raise InvalidInput(f"no {channel} template {template_id!r}",
                               field=f"{field}.templates.{channel}")


async def _fetch(conn: Connection, package_id: str) -> Package:
    row = await conn.fetchrow(f"select {_COLUMNS} from campaign_packages where id = $1",
                              package_id)
    if row is None:
        raise NotFound(f"campaign package {package_id!r} not found")
    return _package(row)


async def create_package(db: Database, hq: HqContext, data: PackageCreate) -> Package:
    async with db.hq_tx() as conn:
        await _check(conn, data.campaign)
        try:
            row = await conn.fetchrow(
                f"""insert into campaign_packages (id, campaign, description, locked,
                                                   created_by)
                    values ($1, $2, $3, $4, $5) returning {_COLUMNS}""",
                data.id, msgspec.to_builtins(data.campaign), data.description,
                sorted(set(data.locked)), hq.actor.label)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"package {data.id!r} already exists", field="id") from None
        await record_hq(conn, hq, "campaign_package.published", "campaign_package", data.id,
                        {"locked": data.locked})
    return _package(row)


async def update_package(db: Database, hq: HqContext, package_id: str,
                         data: PackageUpdate) -> Package:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    async with db.hq_tx() as conn:
        await _fetch(conn, package_id)
        if "campaign" in changes:
            await _check(conn, changes["campaign"])
            changes["campaign"] = msgspec.to_builtins(changes["campaign"])
        if "locked" in changes:
            changes["locked"] = sorted(set(changes["locked"]))
        if changes:
            names = list(changes)
            sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
            await conn.execute(
                f"""update campaign_packages set {sets}, revision = revision + 1,
                        updated_at = now() where id = $1""", package_id, *changes.values())
            await record_hq(conn, hq, "campaign_package.updated", "campaign_package",
                            package_id, {"fields": names})
        return await _fetch(conn, package_id)


async def get_package(db: Database, package_id: str) -> Package:
    async with db.hq_tx() as conn:
        return await _fetch(conn, package_id)


async def list_packages(db: Database, *, cursor: str | None, limit: int,
                        published_only: bool = False) -> Page[Package]:
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.hq_tx() as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS} from campaign_packages
                where ($1::text is null or id > $1) and (not $2 or status = 'published')
                order by id limit $3""", after, published_only, limit + 1)
    return page_of([_package(r) for r in rows], limit, lambda p: p.id)


async def locked_fields(conn: Connection, package_id: str) -> set[str]:
    locked = await conn.fetchval("select locked from campaign_packages where id = $1",
                                 package_id)
    return set(locked or ()) | set(ALWAYS_HQ)


async def adopt(db: Database, ctx: TenantContext, data: Adoption) -> Campaign:
    """A draft campaign of this tenant from a published package, with the tenant's
    adaptations (each refused, naming the field, if the package locks it)."""
    changes = {k: v for k, v in msgspec.structs.asdict(data).items()
               if v is not msgspec.UNSET and k != "package_id"}
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            f"select {_COLUMNS} from campaign_packages where id = $1 and status = 'published'",
            data.package_id)
        if row is None:
            raise InvalidInput(f"no published campaign package {data.package_id!r}",
                               field="package_id")
        package = _package(row)
        locked = set(package.locked) | set(ALWAYS_HQ)
        for name in changes:
            if name in locked:
                raise InvalidInput(f"{name!r} is locked by HQ in package {package.id!r}",
                                   field=name)
        fields = msgspec.convert(
            {**msgspec.to_builtins(package.campaign), **msgspec.to_builtins(changes)},
            CampaignFields)
        await check_definition(conn, ctx, fields)
        campaign = await insert(conn, ctx, fields, package_id=package.id,
                                package_revision=package.revision)
        await record(conn, ctx, "campaign.adopted", "campaign", campaign.id,
                     {"package_id": package.id, "revision": package.revision,
                      "adapted": sorted(changes)})
        return campaign
