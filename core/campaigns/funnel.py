"""The audience funnel of a campaign: counts per step and reason, and each recipient's
decision."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from core.campaigns.plan import STEPS
from core.campaigns.schemas import Funnel, FunnelStep, ReasonCount, Recipient
from core.campaigns.service import fetch, parse_id
from core.db import Database
from core.errors import InvalidInput, NotFound
from core.holdout.service import parse_customer_id
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import TenantContext

# Planned, then displaced by a higher-priority campaign: shown as the funnel's last step.
DISPLACED = "displaced"
FUNNEL_STEPS = (*STEPS, DISPLACED)
_RECIPIENT_COLUMNS = ("customer_id::text, step, reason, channel, variant, scheduled_at, "
                      "delayed_from, message_id, channels, decided_at")


def build_funnel(campaign_id: str, rows: list[dict[str, Any]], *, simulated: bool,
                 audience: int) -> Funnel:
    """`rows`: (step, reason, channel, variant, delayed, n) groups of decided customers."""
    excluded: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    channels: dict[str, int] = defaultdict(int)
    variants: dict[str, int] = defaultdict(int)
    planned = delayed = 0
    for row in rows:
        step, n = row["step"], row["n"]
        if step == "planned":
            planned += n
            channels[row["channel"]] += n
            if row["variant"]:
                variants[row["variant"]] += n
            delayed += row["delayed"]
        else:
            excluded[step][row["reason"] or step] += n
    decided = sum(r["n"] for r in rows)
    remaining = decided
    steps = []
    for step in FUNNEL_STEPS:
        reasons = excluded.get(step, {})
        out = sum(reasons.values())
        steps.append(FunnelStep(
            step=step, entered=remaining, excluded=out, remaining=remaining - out,
            reasons=[ReasonCount(reason=k, count=v)
                     for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]))
        remaining -= out
    return Funnel(campaign_id=campaign_id, simulated=simulated, audience=audience,
                  planned=planned, steps=steps, channels=dict(channels),
                  variants=dict(variants), delayed_by_quiet_hours=delayed,
                  displaced=sum(excluded.get(DISPLACED, {}).values()),
                  pending=max(audience - decided, 0))


async def funnel(db: Database, ctx: TenantContext, campaign_id: str) -> Funnel:
    async with db.tenant_tx(ctx) as conn:
        campaign = await fetch(conn, campaign_id)
        rows = await conn.fetch(
            """select step, reason, channel, variant,
                      count(*) filter (where delayed_from is not null)::int as delayed,
                      count(*)::int as n
               from campaign_recipients where campaign_id = $1
               group by step, reason, channel, variant""", parse_id(campaign_id))
    audience = campaign.progress.audience if campaign.progress and \
        campaign.progress.audience is not None else sum(r["n"] for r in rows)
    # A displaced recipient had passed every step: count it as planned, then displaced.
    data = [dict(r) for r in rows]
    return build_funnel(campaign.id, data, simulated=False, audience=audience)


def channel_reasons(channels: dict[str, str | None], used: str | None) -> dict[str, str]:
    """Why each other channel was not used. Stored null: it passed every filter too, but
    one communication per customer per campaign."""
    return {ch: reason or f"dedupe:sent_on_{used}" for ch, reason in channels.items()}


def _recipient(row: Any) -> Recipient:
    values = {k: v for k, v in dict(row).items() if v is not None}
    values["channels"] = channel_reasons(values.get("channels", {}), values.get("channel"))
    return Recipient(**values)


async def recipients(db: Database, ctx: TenantContext, campaign_id: str, *,
                     cursor: str | None, limit: int, step: str | None = None,
                     reason: str | None = None) -> Page[Recipient]:
    check_limit(limit)
    if step is not None and step not in (*FUNNEL_STEPS, "planned"):
        raise InvalidInput(f"unknown step {step!r} (steps: planned, "
                           f"{', '.join(FUNNEL_STEPS)})", field="step")
    after = decode_cursor(cursor, str)
    if after is not None:
        parse_customer_id(after, "cursor")
    async with db.tenant_tx(ctx) as conn:
        await fetch(conn, campaign_id)
        rows = await conn.fetch(
            f"""select {_RECIPIENT_COLUMNS} from campaign_recipients
                where campaign_id = $1 and ($2::text is null or step = $2)
                  and ($3::text is null or reason = $3)
                  and ($4::uuid is null or customer_id > $4::uuid)
                order by customer_id limit $5""",
            parse_id(campaign_id), step, reason, after, limit + 1)
    return page_of([_recipient(r) for r in rows], limit, lambda r: r.customer_id)


async def recipient(db: Database, ctx: TenantContext, campaign_id: str,
                    customer_id: str) -> Recipient:
    """Why this customer was (or was not) sent this campaign."""
    try:
        cid = uuid.UUID(customer_id)
    except ValueError:
        raise NotFound(f"customer {customer_id!r} not found") from None
    async with db.tenant_tx(ctx) as conn:
        await fetch(conn, campaign_id)
        row = await conn.fetchrow(
            f"""select {_RECIPIENT_COLUMNS} from campaign_recipients
                where campaign_id = $1 and customer_id = $2""", parse_id(campaign_id), cid)
    if row is None:
        raise NotFound(f"customer {customer_id} is not in this campaign's decided audience")
    return _recipient(row)
