"""Campaign lifecycle: draft → scheduled → running → completed, or cancelled.

- `schedule`: a draft, re-checked (segment, templates, governance), gets its send time;
  planning starts at once when the first send is within `rules.PLAN_AHEAD`, else the
  minute tick starts it then.
- running: planning (batches) and then waiting for the last scheduled send.
- completed: planning finished and every scheduled send time has passed (the tick).
- `cancel`: from draft, scheduled or running; the campaign's still-planned messages are
  skipped (already sent ones stay in the contact history).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from arq import ArqRedis
from redis.asyncio import Redis

from core.audit.service import record
from core.campaigns import rules
from core.campaigns.schemas import Campaign, Schedule
from core.campaigns.service import CANCELLABLE, check_definition, fetch, set_status
from core.db import Connection, Database
from core.errors import Conflict
from core.jobs.context import enqueue
from core.messaging.bulk import skip_source
from core.settings import Settings
from tenants.context import TenantContext


def due_for_planning(campaign: Campaign, now: datetime) -> bool:
    return rules.first_send(campaign.schedule, now) - rules.PLAN_AHEAD <= now


async def enqueue_plan(arq: ArqRedis | Redis, settings: Settings, tenant_id: str,
                       campaign_id: str, attempt: str = "") -> None:
    await enqueue(arq, settings, "plan_campaign", tenant_id=tenant_id,
                  key=f"{campaign_id}{':' + attempt if attempt else ''}",
                  campaign_id=campaign_id)


async def schedule(db: Database, arq: ArqRedis | Redis, settings: Settings,
                   ctx: TenantContext, campaign_id: str) -> Campaign:
    now = datetime.now(UTC)
    async with db.tenant_tx(ctx) as conn:
        campaign = await fetch(conn, campaign_id, lock="for update")
        if campaign.status != "draft":
            raise Conflict(f"only a draft can be scheduled (this one is {campaign.status})",
                           field="status")
        await check_definition(conn, ctx, campaign)
        rules.check_not_past(campaign.schedule, now)
        await set_status(conn, ctx, campaign, "scheduled", "campaign.scheduled",
                         ", scheduled_at = now()")
        campaign = await fetch(conn, campaign_id)
    if due_for_planning(campaign, now):
        await enqueue_plan(arq, settings, ctx.tenant_id, campaign.id)
    return campaign


async def unschedule(db: Database, ctx: TenantContext, campaign_id: str) -> Campaign:
    async with db.tenant_tx(ctx) as conn:
        campaign = await fetch(conn, campaign_id, lock="for update")
        if campaign.status != "scheduled":
            raise Conflict(f"only a scheduled campaign goes back to draft (this one is "
                           f"{campaign.status})", field="status")
        await set_status(conn, ctx, campaign, "draft", "campaign.unscheduled",
                         ", scheduled_at = null")
        return await fetch(conn, campaign_id)


async def cancel(db: Database, ctx: TenantContext, campaign_id: str) -> Campaign:
    async with db.tenant_tx(ctx) as conn:
        # Waits for a batch being decided (it holds a share lock on the row), so its
        # messages are skipped too.
        campaign = await fetch(conn, campaign_id, lock="for update")
        if campaign.status not in CANCELLABLE:
            raise Conflict(f"a {campaign.status} campaign cannot be cancelled",
                           field="status")
        skipped = await skip_source(conn, ctx, "campaign", campaign.id, "campaign cancelled")
        await set_status(conn, ctx, campaign, "cancelled", "campaign.cancelled",
                         ", cancelled_at = now()", {"messages_skipped": skipped})
        return await fetch(conn, campaign_id)


async def complete_finished(conn: Connection, ctx: TenantContext, now: datetime) -> int:
    """running → completed for campaigns planned whose last send time has passed."""
    rows = await conn.fetch(
        """update campaigns c set status = 'completed', completed_at = $1, updated_at = $1
           where c.status = 'running' and c.planned_at is not null
             and coalesce(c.last_send_at, c.planned_at) <= $1
           returning c.id::text""", now)
    for row in rows:
        await record(conn, ctx, "campaign.completed", "campaign", row["id"])
    return len(rows)


async def tick(db: Database, arq: ArqRedis | Redis, settings: Settings,
               ctx: TenantContext, now: datetime | None = None) -> dict[str, int]:
    """One tenant's minute: start due campaigns, restart stalled plans, complete finished
    ones. Re-enqueueing is harmless: a batch already decided is skipped."""
    now = now or datetime.now(UTC)
    async with db.tenant_tx(ctx) as conn:
        scheduled = await conn.fetch(
            "select c.id::text as id, c.schedule from campaigns c where c.status = 'scheduled'")
        # Planning that made no progress for 5 minutes: its jobs died with a worker.
        stalled = await conn.fetch(
            """select c.id::text as id from campaigns c
               where c.status = 'running' and c.planned_at is null
                 and greatest(c.started_at, (select max(finished_at) from campaign_batches b
                                              where b.campaign_id = c.id))
                     < $1::timestamptz - interval '5 minutes'""", now)
        completed = await complete_finished(conn, ctx, now)
    started = 0
    for row in scheduled:
        when = rules.first_send(msgspec.convert(row["schedule"], Schedule), now)
        if when - rules.PLAN_AHEAD <= now:
            await enqueue_plan(arq, settings, ctx.tenant_id, row["id"])
            started += 1
    slot = str(int(now.timestamp()) // 300)
    for row in stalled:
        await enqueue_plan(arq, settings, ctx.tenant_id, row["id"], attempt=slot)
    return {"started": started, "restarted": len(stalled), "completed": completed}
