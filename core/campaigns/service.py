"""Campaigns: definition, lifecycle (draft → scheduled → running → completed / cancelled).

Planning itself (audience snapshot, batches, filters, caps) lives in `core.campaigns.plan`;
the arq jobs that drive it in `core.campaigns.jobs`.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from core.audit.service import record
from core.campaigns import rules
from core.campaigns.audience import check_segment
from core.campaigns.schemas import (
    Campaign,
    CampaignCreate,
    CampaignFields,
    CampaignUpdate,
    Progress,
    Status,
)
from core.db import Connection, Database
from core.errors import Conflict, InvalidInput, NotFound
from core.pagination import Page, check_limit, decode_cursor, page_of
from core.pressure.service import policy_in
from core.templates.effective import load_effective
from tenants.context import TenantContext

FIELDS = tuple(CampaignFields.__struct_fields__)
_JSON_FIELDS = ("templates", "schedule", "variants", "data")
COLUMNS = (
    "c.id::text as id, c.name, c.category, c.purpose, c.priority, c.segment_id, c.channels, "
    "c.templates, c.schedule, c.variants, c.control_percent::float8 as control_percent, "
    "c.quiet_hours, c.bypass_quiet_hours, c.pressure_exempt, c.tags, c.data, c.package_id, "
    "c.package_revision, c.status, c.send_at, c.policy_version, c.plan_error, c.created_at, "
    "c.created_by, c.updated_at, c.scheduled_at, c.started_at, c.planned_at, c.completed_at, "
    "c.cancelled_at, c.audience_size, c.batches_total, b.planned, b.excluded, b.batches_done")
# Progress is read from the batches as they are decided (visible while planning runs).
_PROGRESS = """left join lateral (
    select coalesce(sum(planned), 0)::int as planned, coalesce(sum(excluded), 0)::int as excluded,
           (count(*) filter (where status = 'done'))::int as batches_done
    from campaign_batches where campaign_id = c.id) b on true"""
EDITABLE: tuple[Status, ...] = ("draft",)
CANCELLABLE: tuple[Status, ...] = ("draft", "scheduled", "running")


def parse_id(campaign_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(campaign_id)
    except ValueError:
        raise NotFound(f"campaign {campaign_id!r} not found") from None


def to_campaign(row: asyncpg.Record) -> Campaign:
    values: dict[str, Any] = dict(row)
    audience = values.pop("audience_size")
    total = values.pop("batches_total")
    done = values.pop("batches_done")
    planned, excluded = values.pop("planned"), values.pop("excluded")
    values["channels"] = list(values["channels"])
    values["tags"] = list(values["tags"])
    if values["status"] != "draft":
        percent = 100.0 * done / total if total else (100.0 if values["planned_at"] else 0.0)
        values["progress"] = Progress(audience=audience, batches_total=total,
                                      batches_done=done, planned=planned, excluded=excluded,
                                      percent=round(percent, 1))
    return msgspec.convert(values, Campaign)


async def fetch(conn: Connection, campaign_id: str, *, lock: str = "") -> Campaign:
    """`lock`: "" or "for update" / "for share" (of the campaign row)."""
    if lock:
        lock = f"{lock} of c"
    row = await conn.fetchrow(
        f"select {COLUMNS} from campaigns c {_PROGRESS} where c.id = $1 {lock}",
        parse_id(campaign_id))
    if row is None:
        raise NotFound(f"campaign {campaign_id!r} not found")
    return to_campaign(row)


async def check_definition(conn: Connection, ctx: TenantContext, data: CampaignFields) -> int:
    """Everything a campaign must satisfy to be saved; returns the pressure policy
    version it was checked against."""
    rules.check_fields(data)
    policy = await policy_in(conn, ctx.tenant_id)
    rules.check_governance(data, policy)
    await check_segment(conn, ctx, data.segment_id)
    templates = await load_effective(conn, ctx.tenant_id, [
        *data.templates.values(), *(t for v in data.variants for t in v.templates.values())])
    wanted = [(f"templates.{ch}", ch, t) for ch, t in data.templates.items()]
    for i, variant in enumerate(data.variants):
        wanted += [(f"variants[{i}].templates.{ch}", ch, t)
                   for ch, t in variant.templates.items()]
    for field, channel, template_id in wanted:
        template = templates.get(template_id)
        if template is None:
            raise InvalidInput(f"template {template_id!r} not found", field=field)
        if template.channel != channel:
            raise InvalidInput(f"template {template_id!r} is a {template.channel} template",
                               field=field)
    return policy.version


def _values(data: CampaignFields) -> list[Any]:
    raw = msgspec.to_builtins(data)
    return [raw.get(name, msgspec.to_builtins(getattr(data, name))) for name in FIELDS]


async def insert(conn: Connection, ctx: TenantContext, data: CampaignFields, *,
                 package_id: str | None = None, package_revision: int | None = None
                 ) -> Campaign:
    cid = uuid.uuid4()
    names = ", ".join(FIELDS)
    params = ", ".join(f"${i + 7}" for i in range(len(FIELDS)))
    await conn.execute(
        f"""insert into campaigns (tenant_id, id, salt, created_by, package_id,
                                   package_revision, {names})
            values ($1, $2, $3, $4, $5, $6, {params})""",
        ctx.tenant_id, cid, secrets.token_hex(16), ctx.actor.label, package_id,
        package_revision, *_values(data))
    return await fetch(conn, str(cid))


async def create_campaign(db: Database, ctx: TenantContext, data: CampaignCreate) -> Campaign:
    async with db.tenant_tx(ctx) as conn:
        await check_definition(conn, ctx, data)
        campaign = await insert(conn, ctx, data)
        await record(conn, ctx, "campaign.created", "campaign", campaign.id,
                     {"name": data.name, "category": data.category})
        return campaign


async def get_campaign(db: Database, ctx: TenantContext, campaign_id: str) -> Campaign:
    async with db.tenant_tx(ctx) as conn:
        return await fetch(conn, campaign_id)


async def list_campaigns(db: Database, ctx: TenantContext, *, cursor: str | None, limit: int,
                         status: Status | None = None) -> Page[Campaign]:
    check_limit(limit)
    after = decode_cursor(cursor, list[str])
    if after is not None and len(after) != 2:
        raise InvalidInput("cursor is not a value returned by this endpoint", field="cursor")
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select {COLUMNS} from campaigns c {_PROGRESS}
                where ($1::timestamptz is null or (c.created_at, c.id) < ($1, $2::uuid))
                  and ($3::text is null or c.status = $3)
                order by c.created_at desc, c.id desc limit $4""",
            datetime.fromisoformat(after[0]) if after else None, after[1] if after else None,
            status, limit + 1)
    return page_of([to_campaign(r) for r in rows], limit,
                   lambda c: [c.created_at.isoformat(), c.id])


async def update_campaign(db: Database, ctx: TenantContext, campaign_id: str,
                          patch: CampaignUpdate) -> Campaign:
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with db.tenant_tx(ctx) as conn:
        current = await fetch(conn, campaign_id, lock="for update")
        if current.status not in EDITABLE:
            raise Conflict(f"a {current.status} campaign cannot be edited", field="status")
        if current.package_id:
            await _check_package_locks(conn, current.package_id, changes)
        merged = msgspec.convert(
            {**msgspec.to_builtins(_fields_of(current)), **msgspec.to_builtins(changes)},
            CampaignFields)
        await check_definition(conn, ctx, merged)
        if changes:
            names = list(changes)
            sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
            # `_values`, not `to_builtins(merged)`: omit_defaults drops a field set back to its
            # default (bypass_quiet_hours=false, priority=50), which must be written too.
            values = dict(zip(FIELDS, _values(merged), strict=True))
            await conn.execute(
                f"update campaigns set {sets}, updated_at = now() where id = $1",
                uuid.UUID(current.id), *[values[n] for n in names])
            await record(conn, ctx, "campaign.updated", "campaign", current.id,
                         {"fields": names})
        return await fetch(conn, current.id)


def _fields_of(campaign: Campaign) -> CampaignFields:
    return CampaignFields(**{name: getattr(campaign, name) for name in FIELDS})


async def _check_package_locks(conn: Connection, package_id: str,
                               changes: dict[str, Any]) -> None:
    from core.campaigns.packages import locked_fields

    locked = await locked_fields(conn, package_id)
    for name in changes:
        if name in locked or name in ("category", "purpose", "pressure_exempt",
                                      "bypass_quiet_hours"):
            raise InvalidInput(f"{name!r} is set by the HQ package {package_id!r}",
                               field=name)


async def set_status(conn: Connection, ctx: TenantContext, campaign: Campaign,
                     status: Status, action: str, extra: str = "",
                     details: dict[str, Any] | None = None) -> None:
    await conn.execute(
        f"update campaigns set status = $2, updated_at = now() {extra} where id = $1",
        uuid.UUID(campaign.id), status)
    await record(conn, ctx, action, "campaign", campaign.id,
                 {"from": campaign.status, "to": status, **(details or {})})


def now() -> datetime:
    return datetime.now(UTC)
