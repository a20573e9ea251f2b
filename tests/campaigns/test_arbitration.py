"""Arbitration across campaigns (Adobe's rule), displacement, exemptions, concurrency and a
crash in the middle of a plan."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from core.campaigns import planner, service
from core.campaigns.funnel import funnel
from core.errors import InvalidInput
from core.pressure import service as pressure
from tests.campaigns.factories import (
    add_customers,
    add_history,
    create_campaign,
    make_shop,
    messages,
    plan_campaign,
    recipients,
    run_campaign,
)
from tests.pressure.factories import rule, use_policy

NOON = {"kind": "at", "at": "2030-03-04T12:00:00+01:00"}
EVENING = {"kind": "at", "at": "2030-03-04T18:00:00+01:00"}
MORNING = {"kind": "at", "at": "2030-03-04T09:00:00+01:00"}


async def _violations(shop) -> list:
    async with shop.db.tenant_tx(shop.ctx) as conn:
        policy = await pressure.policy_in(conn, shop.ctx.tenant_id)
        return await pressure.audit(conn, shop.ctx.timezone, list(policy.rules))


async def test_higher_priority_displaces_lower_and_lower_is_refused(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    ids = await add_customers(shop, 5)
    await use_policy(db, shop.ctx.tenant_id, [rule("one_a_day", 1, "day")])
    newsletter = await run_campaign(shop, schedule=EVENING, priority=20, name="newsletter")
    assert (await funnel(db, shop.ctx, newsletter.id)).planned == 5
    # the alert is planned later, for earlier the same day, with a higher priority: the
    # planned newsletter does not count against it, and it takes the newsletter's slot
    alert = await run_campaign(shop, schedule=NOON, priority=90, category="alert",
                               purpose="traffic_info", name="alert")
    assert (await funnel(db, shop.ctx, alert.id)).planned == 5
    f = await funnel(db, shop.ctx, newsletter.id)
    assert f.planned == 0 and f.displaced == 5
    assert next(s for s in f.steps if s.step == "displaced").reasons[0].reason == \
        f"displaced:one_a_day:{alert.id}"
    skipped = await messages(shop, source_id=newsletter.id)
    assert {m["status"] for m in skipped} == {"skipped"}
    assert "displaced by campaign" in skipped[0]["status_reason"]
    # a lower-priority campaign now finds the day full of higher-priority messages
    promo = await run_campaign(shop, schedule=MORNING, priority=10, name="promo")
    d = await recipients(shop, promo.id)
    assert {r["reason"] for r in d.values()} == {"arbitration:one_a_day"}
    # once the alert is sent, the same refusal is a plain cap
    async with db.tenant_tx(shop.ctx) as conn:
        await conn.execute("update messages set status = 'sent', sent_at = scheduled_at "
                           "where source_id = $1", alert.id)
    late = await run_campaign(shop, schedule=EVENING, priority=99, name="late")
    assert {r["reason"] for r in (await recipients(shop, late.id)).values()} == \
        {"cap:one_a_day"}
    assert await _violations(shop) == []
    assert len(ids) == 5


async def test_equal_priority_earliest_scheduled_wins(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    await add_customers(shop, 3)
    await use_policy(db, shop.ctx.tenant_id, [rule("one_a_day", 1, "day")])
    evening = await run_campaign(shop, schedule=EVENING, priority=50, name="evening")
    noon = await run_campaign(shop, schedule=NOON, priority=50, name="noon")
    assert (await funnel(db, shop.ctx, noon.id)).planned == 3
    assert (await funnel(db, shop.ctx, evening.id)).displaced == 3
    # same priority, later: the earlier one keeps its place
    later = await run_campaign(shop, schedule=EVENING, priority=50, name="later")
    assert {r["reason"] for r in (await recipients(shop, later.id)).values()} == \
        {"arbitration:one_a_day"}


async def test_transactional_is_exempt_and_not_counted(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    ids = await add_customers(shop, 2)
    await use_policy(db, shop.ctx.tenant_id, [rule("none", 0, "week")])
    await add_history(shop, [{"customer_id": ids[0], "category": "transactional",
                              "purpose": "transactional",
                              "at": datetime(2030, 3, 4, 8, tzinfo=UTC)}])
    receipt = await run_campaign(shop, schedule=NOON, category="transactional",
                                 purpose="transactional", name="receipts")
    assert (await funnel(db, shop.ctx, receipt.id)).planned == 2
    news = await run_campaign(shop, schedule=NOON, name="news")
    assert {r["reason"] for r in (await recipients(shop, news.id)).values()} == {"cap:none"}


async def test_exemption_needs_governance(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    await add_customers(shop, 3)
    await use_policy(db, shop.ctx.tenant_id, [rule("one_a_day", 1, "day")])
    with pytest.raises(InvalidInput) as err:
        await create_campaign(shop, schedule=NOON, pressure_exempt=True)
    assert err.value.field == "pressure_exempt"
    await use_policy(db, shop.ctx.tenant_id, [rule("one_a_day", 1, "day")], exemption=True)
    low = await run_campaign(shop, schedule=EVENING, priority=10, name="low")
    exempt = await run_campaign(shop, schedule=NOON, priority=5, pressure_exempt=True,
                                name="exempt")
    # exempt: sent regardless of the cap, and (like a transactional message) not counted
    assert (await funnel(db, shop.ctx, exempt.id)).planned == 3
    assert (await funnel(db, shop.ctx, low.id)).planned == 3
    assert await _violations(shop) == []
    assert {tuple(m["tags"]) for m in await messages(shop, source_id=exempt.id)} == \
        {("pressure-exempt",)}


async def test_concurrent_campaigns_never_exceed_a_cap(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    await add_customers(shop, 60)
    await use_policy(db, shop.ctx.tenant_id, [rule("one_a_day", 1, "day"),
                                              rule("two_a_week", 2, "week")])
    campaigns = [await create_campaign(shop, schedule=s, priority=p, name=f"c{i}")
                 for i, (s, p) in enumerate([(NOON, 30), (EVENING, 60), (MORNING, 45),
                                             (NOON, 60)])]
    await asyncio.gather(*(plan_campaign(shop, c.id, batch_size=7) for c in campaigns))
    assert await _violations(shop) == []
    live = [m for m in await messages(shop) if m["status"] == "planned"]
    per_customer: dict[uuid.UUID, list] = {}
    for m in live:
        per_customer.setdefault(m["customer_id"], []).append(m)
    assert len(per_customer) == 60 and all(len(v) == 1 for v in per_customer.values())
    # whatever the order the plans ran in, the day went to the best-ranked campaign:
    # priority 60, and of the two, the one scheduled earlier
    assert {m["source_id"] for m in live} == {campaigns[3].id}


async def test_a_plan_killed_mid_batch_resumes_without_duplicates(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    await add_customers(shop, 50)
    await use_policy(db, shop.ctx.tenant_id, [rule("one_a_day", 1, "day")])
    campaign = await create_campaign(shop, schedule=NOON)
    async with db.tenant_tx(shop.ctx) as conn:
        await conn.execute("update campaigns set status = 'scheduled' where id = $1",
                           uuid.UUID(campaign.id))
    batches = await planner.start(db, shop.ctx, campaign.id, batch_size=20)
    assert batches == [0, 1, 2]
    first, excluded = await planner.plan_batch(db, shop.ctx, campaign.id, 0)
    assert 5 < first < 35 and excluded == 0  # batches follow the id partitions
    progress = (await service.get_campaign(db, shop.ctx, campaign.id)).progress
    assert (progress.audience, progress.batches_total, progress.batches_done,
            progress.planned, progress.percent) == (50, 3, 1, first, 33.3)
    # batch 1 dies while waiting for the pressure lock (another plan holds it)
    async with db.pool.acquire() as blocker, blocker.transaction():
        await pressure.lock_tenant(blocker, shop.ctx.tenant_id)
        task = asyncio.create_task(planner.plan_batch(db, shop.ctx, campaign.id, 1))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(await messages(shop, source_id=campaign.id)) == first
    # the worker (or the tick) runs it again: it resumes from the snapshot
    assert await planner.start(db, shop.ctx, campaign.id) == [1, 2]
    await planner.plan_all(db, shop.ctx, campaign.id)
    await planner.plan_all(db, shop.ctx, campaign.id)  # a duplicate job changes nothing
    assert await planner.plan_batch(db, shop.ctx, campaign.id, 0) is None
    sent = await messages(shop, source_id=campaign.id)
    assert len(sent) == 50 and len({m["customer_id"] for m in sent}) == 50
    f = await funnel(db, shop.ctx, campaign.id)
    assert f.planned == 50 and f.pending == 0 and f.audience == 50
