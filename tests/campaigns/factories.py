"""A tenant ready for campaigns: customers (set-based inserts), consents, preferences,
a segment, HQ templates; and helpers to read what planning did."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import msgspec

from core.campaigns import planner, service
from core.campaigns.funnel import channel_reasons
from core.campaigns.schemas import Campaign, CampaignCreate
from core.db import Database
from core.segments import definition as d
from core.segments.schemas import SegmentCreate
from core.segments.service import create_segment
from tenants.context import SYSTEM, TenantContext
from tenants.service import context_for
from tests.templates.factories import hq_template

_TEMPLATES: dict[str, str] = {}


@dataclass
class Shop:
    db: Database
    ctx: TenantContext
    templates: dict[str, str]
    segment_id: str = ""
    customers: list[uuid.UUID] = field(default_factory=list)


async def templates(db: Database) -> dict[str, str]:
    """One HQ email and one SMS template shared by every test (visible to all tenants)."""
    if not _TEMPLATES:
        _TEMPLATES["email"] = await hq_template(db, channel="email", category="marketing",
                                                purpose="marketing")
        _TEMPLATES["sms"] = await hq_template(db, channel="sms", category="marketing",
                                              purpose="marketing")
    return dict(_TEMPLATES)


async def make_shop(db: Database, make_tenant: Any, prefix: str = "camp",
                    timezone: str = "Europe/Paris") -> Shop:
    tenant = await make_tenant(prefix, timezone=timezone)
    ctx = context_for(tenant, SYSTEM)
    shop = Shop(db=db, ctx=ctx, templates=await templates(db))
    segment = await create_segment(db, ctx, SegmentCreate(name="everyone",
                                                          definition=d.Everyone()))
    shop.segment_id = segment.id
    return shop


async def add_customers(shop: Shop, n: int, *, email: bool = True, phone: bool = True,
                        consents: dict[str, list[str]] | None = None,
                        timezone: str | None = None, quiet: tuple[time, time] | None = None,
                        preferred: list[str] | None = None, erased: bool = False,
                        ids: list[uuid.UUID] | None = None) -> list[uuid.UUID]:
    """`n` customers; `consents` maps channel → purposes granted (default: email and sms
    granted for marketing, traffic_info and service)."""
    ids = ids or [uuid.uuid4() for _ in range(n)]
    granted = consents if consents is not None else {
        ch: ["marketing", "traffic_info", "service"] for ch in ("email", "sms")}
    async with shop.db.tenant_tx(shop.ctx) as conn:
        await conn.execute(
            """insert into customers (tenant_id, id, email, phone, erased_at)
               select $1, u.id, case when $3 then 'c' || left(u.id::text, 8) || '@example.com'
                                end,
                      case when $4 then '+3361' || lpad((abs(hashtext(u.id::text)) % 10000000)
                                                        ::text, 7, '0') end,
                      case when $5 then now() end
               from unnest($2::uuid[]) as u(id)""",
            shop.ctx.tenant_id, ids, email, phone, erased)
        rows = [(ch, p) for ch, purposes in granted.items() for p in purposes]
        if rows:
            await conn.execute(
                """insert into consents (tenant_id, customer_id, channel, purpose, status,
                                         legal_basis, source)
                   select $1, u.id, c.channel, c.purpose, 'granted', 'consent', 'test'
                   from unnest($2::uuid[]) as u(id)
                   cross join unnest($3::text[], $4::text[]) as c(channel, purpose)""",
                shop.ctx.tenant_id, ids, [r[0] for r in rows], [r[1] for r in rows])
        if timezone or quiet or preferred:
            await conn.execute(
                """insert into preferences (tenant_id, customer_id, channels, timezone,
                                            quiet_start, quiet_end)
                   select $1, u.id, $3, $4, $5, $6 from unnest($2::uuid[]) as u(id)""",
                shop.ctx.tenant_id, ids, preferred or [], timezone,
                quiet[0] if quiet else None, quiet[1] if quiet else None)
    shop.customers += ids
    return ids


def campaign_body(shop: Shop, **overrides: Any) -> CampaignCreate:
    channels = overrides.pop("channels", ["email", "sms"])
    values: dict[str, Any] = {
        "name": "Newsletter", "category": "marketing", "purpose": "marketing",
        "segment_id": shop.segment_id, "channels": channels,
        "templates": {ch: shop.templates[ch] for ch in channels}} | overrides
    return msgspec.convert(values, CampaignCreate)


async def create_campaign(shop: Shop, **overrides: Any) -> Campaign:
    return await service.create_campaign(shop.db, shop.ctx, campaign_body(shop, **overrides))


async def plan_campaign(shop: Shop, campaign_id: str, batch_size: int = 1000) -> Campaign:
    """Schedule (without a worker) and plan to the end, in this process."""
    async with shop.db.tenant_tx(shop.ctx) as conn:
        await conn.execute(
            "update campaigns set status = 'scheduled' where id = $1 and status = 'draft'",
            uuid.UUID(campaign_id))
    await planner.plan_all(shop.db, shop.ctx, campaign_id, batch_size=batch_size)
    return await service.get_campaign(shop.db, shop.ctx, campaign_id)


async def run_campaign(shop: Shop, batch_size: int = 1000, **overrides: Any) -> Campaign:
    campaign = await create_campaign(shop, **overrides)
    return await plan_campaign(shop, campaign.id, batch_size)


async def recipients(shop: Shop, campaign_id: str) -> dict[uuid.UUID, dict[str, Any]]:
    async with shop.db.tenant_tx(shop.ctx) as conn:
        rows = await conn.fetch(
            "select * from campaign_recipients where campaign_id = $1",
            uuid.UUID(campaign_id))
    return {r["customer_id"]: dict(r) | {"channels": channel_reasons(r["channels"],
                                                                    r["channel"])}
            for r in rows}


async def messages(shop: Shop, **where: Any) -> list[dict[str, Any]]:
    clauses = " and ".join(f"{k} = ${i + 1}" for i, k in enumerate(where)) or "true"
    async with shop.db.tenant_tx(shop.ctx) as conn:
        rows = await conn.fetch(f"select * from messages where {clauses}", *where.values())
    return [dict(r) for r in rows]


async def add_history(shop: Shop, rows: list[dict[str, Any]]) -> None:
    """Messages already in the contact history (sent or planned)."""
    async with shop.db.tenant_tx(shop.ctx) as conn:
        await conn.executemany(
            """insert into messages (tenant_id, id, customer_id, channel, category, purpose,
                   priority, source_type, source_id, status, scheduled_at, sent_at, tags)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
            [(shop.ctx.tenant_id, r.get("id") or f"h{uuid.uuid4().hex}", r["customer_id"],
              r.get("channel", "email"), r.get("category", "marketing"),
              r.get("purpose", "marketing"), r.get("priority", 0),
              r.get("source_type", "journey"), r.get("source_id", "history"),
              r.get("status", "sent"), r["at"],
              r["at"] if r.get("status", "sent") != "planned" else None,
              r.get("tags", [])) for r in rows])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- cross-tenant walk (tests/crosstenant.py) ------------------------------------------------

async def make_campaign(world: Any) -> str:
    """A draft campaign of tenant A."""
    shop = Shop(db=world.db, ctx=world.ctx, templates=await templates(world.db))
    segment = await create_segment(world.db, world.ctx, SegmentCreate(
        name=f"walk {uuid.uuid4().hex[:6]}", definition=d.Everyone()))
    shop.segment_id = segment.id
    return (await create_campaign(shop)).id


async def make_holdout(world: Any) -> str:
    from core.holdout.schemas import HoldoutCreate
    from core.holdout.service import create_group
    return (await create_group(world.db, world.ctx, HoldoutCreate(percent=5))).id
