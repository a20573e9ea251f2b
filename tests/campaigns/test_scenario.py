"""The issue's "done when": a tenant runs a newsletter and a traffic alert the same day on
email + SMS; caps, quiet hours, consent, holdout and dedupe visibly shape the funnels, and
nothing exceeds a cap."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time

from core.campaigns.funnel import funnel
from core.holdout import service as holdout
from core.holdout.schemas import HoldoutCreate
from core.pressure import service as pressure
from tests.campaigns.factories import (
    add_customers,
    add_history,
    make_shop,
    messages,
    recipients,
    run_campaign,
)
from tests.pressure.factories import rule, use_policy

EVERYTHING = {"email": ["marketing", "traffic_info"], "sms": ["marketing", "traffic_info"]}


def _out(f, step: str) -> int:
    return next(s.excluded for s in f.steps if s.step == step)


async def test_newsletter_and_traffic_alert_the_same_day(db, make_tenant):
    shop = await make_shop(db, make_tenant, "lyon")
    await use_policy(db, shop.ctx.tenant_id, [
        rule("weekly_marketing", 1, "week", categories=["marketing"]),
        rule("one_a_day", 1, "day"),  # any channel, every category but transactional
        rule("sms_monthly", 3, "month", channel="sms"),
    ], quiet=(21 * 60, 8 * 60), alert_bypass=True)
    await holdout.create_group(db, shop.ctx, HoldoutCreate(
        percent=10, starts_at=datetime(2030, 1, 1, tzinfo=UTC),
        ends_at=datetime(2030, 7, 1, tzinfo=UTC)))
    riders = await add_customers(shop, 120, consents=EVERYTHING)  # subscribed to alerts
    readers = await add_customers(shop, 60, consents={"email": ["marketing"]})
    await add_customers(shop, 20, consents={})  # nothing granted
    sms_only = await add_customers(shop, 20, email=False, consents=EVERYTHING)
    night_owls = await add_customers(shop, 15, consents={"email": ["marketing"]},
                                     quiet=(time(7), time(10)))
    # a marketing message already this week (Monday) for some readers: weekly cap full
    await add_history(shop, [{"customer_id": c, "at": datetime(2030, 3, 4, 9, tzinfo=UTC)}
                             for c in readers[:10]])

    # Tuesday 5 March 2030: the newsletter is planned first, for 07:00 (tenant quiet hours:
    # delayed to 08:00); a disruption hits and the alert goes out at 07:30, bypassing quiet
    # hours, with a higher priority.
    newsletter = await run_campaign(
        shop, name="Newsletter de mars", priority=30,
        schedule={"kind": "at", "at": "2030-03-05T07:00:00+01:00"})
    before = await funnel(db, shop.ctx, newsletter.id)
    alert = await run_campaign(
        shop, name="Perturbation T1", category="alert", purpose="traffic_info", priority=90,
        channels=["sms", "email"], bypass_quiet_hours=True,
        schedule={"kind": "at", "at": "2030-03-05T07:30:00+01:00"})
    news = await funnel(db, shop.ctx, newsletter.id)
    traffic = await funnel(db, shop.ctx, alert.id)

    # the newsletter's funnel
    assert news.audience == 235
    assert _out(news, "address") == 0 and _out(news, "consent") == 20
    assert _out(news, "holdout") > 5
    # 07:00 is inside the tenant's quiet hours: 08:00 (10:00 for the night owls)
    assert before.delayed_by_quiet_hours == before.planned
    assert before.planned == 235 - 20 - _out(before, "holdout") - _out(before, "pressure")
    assert 0 < before.channels["sms"] <= 20  # SMS for those without an email address
    assert news.delayed_by_quiet_hours == news.planned
    assert news.displaced > 80  # the alert took the day's only slot of every rider
    assert news.channels == {"email": news.planned}  # email first; SMS only as a fallback
    nd = await recipients(shop, newsletter.id)
    capped = [c for c in readers[:10] if nd[c]["step"] == "pressure"]  # weekly cap full
    assert capped and _out(news, "pressure") == len(capped)
    assert {nd[c]["reason"] for c in capped} == {"cap:weekly_marketing"}
    assert all(nd[c]["step"] == "holdout" for c in readers[:10] if c not in capped)
    assert all(nd[c]["scheduled_at"] == datetime(2030, 3, 5, 9, tzinfo=UTC)
               for c in night_owls if nd[c]["step"] == "planned")
    assert {nd[c]["step"] for c in riders + sms_only} <= {"displaced", "holdout"}
    assert {nd[c]["channel"] for c in sms_only if nd[c]["step"] == "displaced"} == {"sms"}
    # the alert's funnel: no holdout for alerts, consent for traffic info, SMS first
    assert _out(traffic, "holdout") == 0
    assert _out(traffic, "consent") == 60 + 20 + 15
    assert traffic.planned == 140 and traffic.channels == {"sms": 140}
    assert traffic.delayed_by_quiet_hours == 0
    ad = await recipients(shop, alert.id)
    assert all(ad[c]["channels"] == {"email": "dedupe:sent_on_sms"} for c in riders)
    assert all(ad[c]["channels"] == {"email": "no_address"} for c in sms_only)

    # nothing exceeds a cap, and nobody gets more than one message that day
    async with db.tenant_tx(shop.ctx) as conn:
        policy = await pressure.policy_in(conn, shop.ctx.tenant_id)
        assert await pressure.audit(conn, shop.ctx.timezone, list(policy.rules)) == []
    live = [m for m in await messages(shop) if m["status"] == "planned"]
    assert max(Counter(m["customer_id"] for m in live).values()) == 1
    assert len(live) == news.planned + traffic.planned
