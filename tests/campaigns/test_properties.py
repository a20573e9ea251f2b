"""Property: for random histories, rule sets and campaign mixes (planned one after the
other or concurrently), no period containing a campaign message exceeds any cap, and every
planned campaign message satisfies the arbitration rule

    sent in the period + planned in the period with higher priority < max.

The reference below is plain Python over the final contact history (zoneinfo windows), not
the planner's SQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.pressure.schemas import CapRule
from core.pressure.windows import calendar_start
from tests.campaigns.factories import (
    add_customers,
    add_history,
    create_campaign,
    make_shop,
    messages,
    plan_campaign,
    recipients,
)
from tests.pressure.factories import rule, use_policy

# Four weeks across the DST changes of New York (10 March) and Paris (31 March).
BASE = datetime(2030, 3, 5, tzinfo=UTC)
ZONES = ["Europe/Paris", "America/New_York", "Australia/Sydney", None]
CATEGORIES = {"marketing": "marketing", "service": "service", "alert": "traffic_info"}

rules = st.lists(st.builds(
    lambda i, window, mx, days, channel, cats: rule(
        f"r{i}", mx, window, days=days if window == "rolling" else None, channel=channel,
        categories=cats),
    st.just(0), st.sampled_from(["day", "week", "month", "rolling"]), st.integers(0, 3),
    st.integers(1, 6), st.sampled_from(["any", "email", "sms"]),
    st.sampled_from([[], ["marketing"], ["marketing", "service"], ["alert"]])),
    min_size=1, max_size=4)
history = st.lists(st.fixed_dictionaries({
    "customer": st.integers(0, 3), "hours": st.integers(0, 24 * 28),
    "channel": st.sampled_from(["email", "sms"]),
    "category": st.sampled_from(["marketing", "service", "alert", "transactional"]),
    "status": st.sampled_from(["sent", "sent", "planned", "skipped"]),
    "priority": st.integers(0, 100)}), max_size=14)
campaigns = st.lists(st.fixed_dictionaries({
    "category": st.sampled_from(list(CATEGORIES)), "priority": st.integers(0, 100),
    "hours": st.integers(0, 24 * 28),
    "channels": st.sampled_from([["email"], ["sms"], ["email", "sms"], ["sms", "email"]])}),
    min_size=1, max_size=4)


def _resolved(r: Any) -> CapRule:
    return CapRule(id=r.id, max=r.max, window=r.window, days=r.days, channel=r.channel,
                   categories=tuple(r.categories), tags=tuple(r.tags))


def _counted(r: CapRule, m: dict[str, Any]) -> bool:
    return r.applies_to(m["channel"], m["category"], m["tags"])


def _period(r: CapRule, t: datetime, tz: str) -> datetime:
    return calendar_start(r.window, t, tz)


def check(rules_: list[CapRule], live: list[dict[str, Any]], tz_of: dict) -> None:
    by_customer: dict[Any, list[dict[str, Any]]] = {}
    for m in live:
        by_customer.setdefault(m["customer_id"], []).append(m)
    for customer, ms in by_customer.items():
        tz = tz_of[customer]
        for r in rules_:
            counted = [m for m in ms if _counted(r, m)]
            for m in (m for m in counted if m["source_type"] == "campaign"):
                if r.window == "rolling":
                    span = timedelta(days=r.days or 1)
                    starts = [x["t"] for x in counted if m["t"] - span < x["t"] <= m["t"]]
                    worst = max(sum(1 for x in counted if s <= x["t"] < s + span)
                                for s in starts)
                    assert worst <= r.max, (r, m, counted)
                    continue
                key = _period(r, m["t"], tz)
                same = [x for x in counted if _period(r, x["t"], tz) == key]
                assert len(same) <= r.max, (r, m, same)
                if m["status"] == "planned":
                    sent = sum(1 for x in same if x["status"] != "planned")
                    above = sum(1 for x in same if x["status"] == "planned" and x is not m and (
                        x["priority"] > m["priority"] or (x["priority"] == m["priority"]
                                                          and x["t"] < m["t"])))
                    assert sent + above < r.max, (r, m, same)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rules_=rules, past=history, mix=campaigns, zones=st.lists(
    st.sampled_from(ZONES), min_size=4, max_size=4), quiet=st.booleans(),
    concurrent=st.booleans())
async def test_no_cap_is_ever_exceeded_and_arbitration_holds(
        db, make_tenant, rules_, past, mix, zones, quiet, concurrent):
    shop = await make_shop(db, make_tenant, "prop")
    rules_ = [rule(f"r{i}", r.max, r.window, days=r.days, channel=r.channel,
                   categories=r.categories) for i, r in enumerate(rules_)]
    await use_policy(db, shop.ctx.tenant_id, rules_, quiet=(1260, 480) if quiet else (0, 0))
    ids = []
    for tz in zones:
        ids += await add_customers(shop, 1, timezone=tz)
    await add_history(shop, [{
        "customer_id": ids[h["customer"]], "at": BASE + timedelta(hours=h["hours"]),
        "channel": h["channel"], "category": h["category"], "status": h["status"],
        "purpose": "transactional" if h["category"] == "transactional" else "marketing",
        "priority": h["priority"]} for h in past])
    created = [await create_campaign(
        shop, name=f"c{i}", category=c["category"], purpose=CATEGORIES[c["category"]],
        priority=c["priority"], channels=c["channels"],
        schedule={"kind": "at", "at": (BASE + timedelta(hours=c["hours"])).isoformat()})
        for i, c in enumerate(mix)]
    if concurrent:
        await asyncio.gather(*(plan_campaign(shop, c.id, batch_size=2) for c in created))
    else:
        for c in created:
            await plan_campaign(shop, c.id, batch_size=2)

    resolved = [_resolved(r) for r in rules_]
    live = [m | {"t": m["sent_at"] or m["scheduled_at"]}
            for m in await messages(shop) if m["status"] not in ("failed", "skipped")
            and m["category"] != "transactional"]
    tz_of = {cid: tz or shop.ctx.timezone for cid, tz in zip(ids, zones, strict=True)}
    check(resolved, live, tz_of)
    for c in created:
        decided = await recipients(shop, c.id)
        assert len(decided) == len(ids)
        mine = await messages(shop, source_id=c.id)
        assert len({m["customer_id"] for m in mine}) == len(mine)  # one per customer
        planned = {cid for cid, r in decided.items() if r["step"] == "planned"}
        assert planned == {m["customer_id"] for m in mine if m["status"] == "planned"}
