"""Planning a campaign: start (audience snapshot), decide batches, finish; and simulate.

Each batch is one transaction: filters, caps under the pressure locks of the batch's
customers, planned messages written set-based into the outbox with their deterministic ids
(`core.messaging.bulk.enqueue_chosen`), displacement, one recipients row per customer,
the batch marked done. A crash rolls the batch back whole, and the next run
decides it again from the same snapshot (message ids are deterministic besides), so a
resumed plan never duplicates anything.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from core.audit.service import record
from core.campaigns import plan, rules
from core.campaigns.audience import BATCH_SIZE, MEMBERS_SQL, ensure_fresh, snapshot
from core.campaigns.funnel import build_funnel
from core.campaigns.schemas import Campaign, Funnel
from core.campaigns.service import fetch, parse_id
from core.db import Connection, Database
from core.errors import Conflict
from core.holdout.service import active_group_in, buckets_for
from core.identity.keys import Keys
from core.messaging.bulk import enqueue_chosen, skip_planned
from core.model.service import load_suppression_key
from core.pressure import service as pressure
from core.pressure.windows import minutes_to_time
from tenants.context import TenantContext

# Settings of a batch's transaction. Its statements are costed high (tens of thousands of
# rows, per-row functions), so PostgreSQL would JIT-compile each one: ~0.5 s apiece for no
# gain at this size. A batch looks up tens of thousands of customers, consents and histories
# among millions: index probes, not full scans of the big tables, and hashes and sorts in
# memory.
NO_JIT = ("select set_config('jit', 'off', true), set_config('work_mem', '64MB', true), "
          "set_config('random_page_cost', '1.1', true)")


async def build_spec(conn: Connection, ctx: TenantContext, keys: Keys, campaign: Campaign,
                     now: datetime | None = None) -> plan.PlanSpec:
    """`keys`: the `db.keys` the suppression list is matched with (see `plan.hmac_pads`)."""
    policy = await pressure.policy_in(conn, ctx.tenant_id)
    salt = await conn.fetchval("select salt from campaigns where id = $1",
                               uuid.UUID(campaign.id))
    started = campaign.started_at or now or datetime.now(UTC)
    send_at = campaign.send_at or rules.first_send(campaign.schedule, started)
    holdout = None
    if campaign.category == "marketing":
        group = await active_group_in(conn)
        if group is not None and group["buckets"] > 0:
            holdout = (group["salt"], group["buckets"], group["starts_at"], group["ends_at"])
    thresholds, total = [], 0
    for variant in campaign.variants:
        total += variant.split * 100
        thresholds.append(total)
    has_suppressions = await conn.fetchval("select exists (select 1 from suppressions)")
    exempt = campaign.pressure_exempt and policy.campaign_exemption_allowed
    return plan.PlanSpec(
        campaign_id=uuid.UUID(campaign.id), tenant_tz=ctx.timezone,
        category=campaign.category, purpose=campaign.purpose, priority=campaign.priority,
        channels=tuple(campaign.channels), templates=dict(campaign.templates),
        variant_names=tuple(v.name for v in campaign.variants),
        variant_thresholds=tuple(thresholds),
        variant_templates={str(i): dict(v.templates) for i, v in enumerate(campaign.variants)},
        tags=tuple(campaign.tags) + ((pressure.EXEMPT_TAG,) if exempt else ()),
        data=dict(campaign.data),
        schedule_kind=campaign.schedule.kind, send_at=send_at,
        local_date=campaign.schedule.date,
        local_time=rules.local_time(campaign.schedule)
        if campaign.schedule.kind == "local_time" else None,
        started_at=started, salt=salt,
        control_buckets=buckets_for(campaign.control_percent),
        apply_quiet=not (campaign.category == "alert" and campaign.bypass_quiet_hours
                         and policy.alert_bypass_quiet_hours),
        abort_quiet=(campaign.quiet_hours or policy.quiet_hours_action) == "abort",
        tenant_quiet=(minutes_to_time(policy.quiet_start), minutes_to_time(policy.quiet_end))
        if policy.has_quiet_hours else None,
        holdout=holdout,
        rules=() if exempt else tuple(pressure.rules_for(policy, campaign.category,
                                                          campaign.tags)),
        pads=plan.hmac_pads(await load_suppression_key(conn, ctx, keys))
        if has_suppressions else None,
        extra={"exempt": exempt, "policy_version": policy.version})


async def _filter(conn: Connection, spec: plan.PlanSpec, ids: list[uuid.UUID], *,
                  ctx: TenantContext | None) -> None:
    """Steps 1-8 into the temp tables. With `ctx` (a real plan) the cap step takes the
    tenant's pressure lock and row locks; a simulation (`ctx=None`) takes neither."""
    await plan.load_customers(conn, spec, ids)
    await plan.load_candidates(conn, spec, ids)
    if spec.rules:
        if ctx is not None:
            await pressure.lock_candidates(conn, ctx.tenant_id, "plan_m")
        await pressure.apply_caps(conn, list(spec.rules), candidates="plan_m",
                                  priority=spec.priority, step=plan.PRESSURE_STEP,
                                  lock_rows=ctx is not None)
    await plan.dedupe(conn, spec, ids)


async def plan_batch(db: Database, ctx: TenantContext, campaign_id: str,
                     batch: int) -> tuple[int, int] | None:
    """Decide one batch; None when there is nothing to do (done already, or the campaign
    is no longer running)."""
    cid = parse_id(campaign_id)
    async with db.tenant_tx(ctx) as conn:
        # Share lock: a cancel waits for the batch to commit, then skips its messages too.
        status = await conn.fetchval("select status from campaigns where id = $1 for share",
                                     cid)
        if status != "running":
            return None
        row = await conn.fetchrow(
            """select customer_ids, status from campaign_batches
               where campaign_id = $1 and batch = $2 for update""", cid, batch)
        if row is None or row["status"] == "done":
            return None
        campaign = await fetch(conn, campaign_id)
        spec = await build_spec(conn, ctx, db.keys, campaign)
        await conn.execute(NO_JIT)
        await _filter(conn, spec, list(row["customer_ids"]), ctx=ctx)
        await plan.choose(conn, spec, ctx.tenant_id)
        await enqueue_chosen(conn, ctx, table="plan_chosen", source_id=campaign.id,
                             purpose=spec.purpose, priority=spec.priority, data=spec.data)
        if spec.rules:
            victims = await pressure.displace(conn, list(spec.rules), chosen="plan_chosen",
                                              priority=spec.priority)
            await _displaced(conn, ctx, campaign, victims)
        planned, excluded = await plan.record_recipients(conn, spec)
        await conn.execute(
            """update campaign_batches set status = 'done', planned = $3, excluded = $4,
                   finished_at = now()
               where campaign_id = $1 and batch = $2""", cid, batch, planned, excluded)
        return planned, excluded


async def _displaced(conn: Connection, ctx: TenantContext, campaign: Campaign,
                     victims: list[dict[str, Any]]) -> None:
    if not victims:
        return
    reasons = [f"displaced by campaign {campaign.id} (priority {campaign.priority}, "
               f"rule {v['rule']})" for v in victims]
    skipped = set(await skip_planned(conn, ctx, [v["id"] for v in victims], reasons))
    hit = [v for v in victims if v["id"] in skipped and v["source_type"] == "campaign"]
    await conn.execute(
        """update campaign_recipients r set step = 'displaced',
               reason = 'displaced:' || u.rule || ':' || $4
           from unnest($1::text[], $2::uuid[], $3::text[]) as u(campaign_id, customer_id, rule)
           where r.campaign_id = u.campaign_id::uuid and r.customer_id = u.customer_id
             and r.step = 'planned'""",
        [v["source_id"] for v in hit], [v["customer_id"] for v in hit],
        [v["rule"] for v in hit], campaign.id)


async def start(db: Database, ctx: TenantContext, campaign_id: str, *,
                batch_size: int = BATCH_SIZE) -> list[int]:
    """scheduled → running: fix the send instant, snapshot the audience. Returns the
    batches still to decide (all of them, or what a crash left)."""
    cid = parse_id(campaign_id)
    async with db.tenant_tx(ctx) as conn:
        campaign = await fetch(conn, campaign_id, lock="for update")
        if campaign.status == "scheduled":
            now = datetime.now(UTC)
            policy = await pressure.policy_in(conn, ctx.tenant_id)
            await conn.execute(
                """update campaigns set status = 'running', started_at = $2, send_at = $3,
                       policy_version = $4, updated_at = now() where id = $1""",
                cid, now, rules.first_send(campaign.schedule, now), policy.version)
            await record(conn, ctx, "campaign.started", "campaign", campaign.id,
                         {"policy_version": policy.version})
        elif campaign.status != "running" or campaign.planned_at is not None:
            return []
        size, batches = await snapshot(conn, ctx, cid, campaign.segment_id, batch_size)
        await conn.execute(
            "update campaigns set audience_size = $2, batches_total = $3 where id = $1",
            cid, size, batches)
        if batches == 0:
            await _finish(conn, ctx, cid)
        pending = await conn.fetch(
            """select batch from campaign_batches where campaign_id = $1 and status = 'pending'
               order by batch""", cid)
    return [r["batch"] for r in pending]


async def _finish(conn: Connection, ctx: TenantContext, cid: uuid.UUID) -> bool:
    row = await conn.fetchrow(
        """update campaigns c set planned_at = now(), updated_at = now(), plan_error = null,
               planned = b.planned, excluded = b.excluded,
               last_send_at = (select max(scheduled_at) from campaign_recipients
                               where campaign_id = $1 and step = 'planned')
           from (select coalesce(sum(planned), 0)::int as planned,
                        coalesce(sum(excluded), 0)::int as excluded
                 from campaign_batches where campaign_id = $1) b
           where c.id = $1 and c.status = 'running' and c.planned_at is null
             and not exists (select 1 from campaign_batches
                             where campaign_id = $1 and status = 'pending')
           returning c.planned, c.excluded""", cid)
    if row is not None:
        await record(conn, ctx, "campaign.planned", "campaign", str(cid), dict(row))
    return row is not None


async def record_error(db: Database, ctx: TenantContext, campaign_id: str,
                       error: str) -> None:
    """A plan that failed for good (the job gave up): shown on the campaign; the minute tick
    retries it, and it can be cancelled."""
    async with db.tenant_tx(ctx) as conn:
        await conn.execute("update campaigns set plan_error = $2, updated_at = now() "
                           "where id = $1", parse_id(campaign_id), error[:500])
        await record(conn, ctx, "campaign.plan_failed", "campaign", campaign_id,
                     {"error": error[:500]})


async def finish_if_done(db: Database, ctx: TenantContext, campaign_id: str) -> bool:
    """Record the end of planning once no batch is pending (True the one time it does)."""
    async with db.tenant_tx(ctx) as conn:
        return await _finish(conn, ctx, parse_id(campaign_id))


async def plan_all(db: Database, ctx: TenantContext, campaign_id: str, *,
                   batch_size: int = BATCH_SIZE) -> None:
    """Plan a running (or scheduled) campaign to the end in this process — what the CLI,
    tests and the benchmark use; the worker runs the same steps as separate jobs."""
    for batch in await start(db, ctx, campaign_id, batch_size=batch_size):
        await plan_batch(db, ctx, campaign_id, batch)
    await finish_if_done(db, ctx, campaign_id)


async def simulate(db: Database, ctx: TenantContext, campaign_id: str, *,
                   batch_size: int = BATCH_SIZE) -> Funnel:
    """The funnel the campaign would have now, without writing anything (the temporary
    tables die with the transaction; a never-refreshed segment is refreshed first)."""
    async with db.tenant_tx(ctx) as conn:
        campaign = await fetch(conn, campaign_id)
        if campaign.status in ("completed", "cancelled"):
            raise Conflict(f"a {campaign.status} campaign cannot be simulated",
                           field="status")
        await ensure_fresh(conn, ctx, campaign.segment_id)
        spec = await build_spec(conn, ctx, db.keys, campaign)
        await conn.execute(NO_JIT)
        ids = [r["customer_id"] for r in
               await conn.fetch(MEMBERS_SQL + " order by 1", campaign.segment_id)]
        rows: list[Any] = []
        for start_at in range(0, len(ids), batch_size):
            await _filter(conn, spec, ids[start_at:start_at + batch_size], ctx=None)
            await plan.choose(conn, spec, ctx.tenant_id)
            rows += [dict(r) for r in await plan.simulated_counts(conn, spec)]
            await plan.drop_batch_tables(conn)
    return build_funnel(campaign.id, rows, simulated=True, audience=len(ids))
