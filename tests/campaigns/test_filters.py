"""Each funnel filter, in order, with its reason: suppression and erasure, addresses and
per-customer channel fallback, consent, quiet hours (delay, abort, alert bypass), holdout,
control group and variants, cross-channel dedupe."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

from core.campaigns.funnel import funnel
from core.holdout import service as holdout
from core.holdout.schemas import HoldoutCreate
from core.messaging.ids import message_id
from core.messaging.statuses import suppress
from core.segments.membership import refresh_segment
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

MONDAY_10H = {"kind": "at", "at": "2030-03-04T10:00:00+01:00"}  # Paris
MONDAY_22H = {"kind": "at", "at": "2030-03-04T22:00:00+01:00"}
# Inside a holdout group's period (it starts now and lasts 6 months), outside quiet hours.
SOON = {"kind": "at", "at": (datetime.now(UTC) + timedelta(days=2)).replace(
    hour=9, minute=0, second=0, microsecond=0).isoformat()}


def _reasons(f, step: str) -> dict[str, int]:
    found = next(s for s in f.steps if s.step == step)
    return {r.reason: r.count for r in found.reasons}


async def test_filters_in_order_with_reasons(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    ok = await add_customers(shop, 3)
    no_email = await add_customers(shop, 2, email=False)
    nothing = await add_customers(shop, 1, email=False, phone=False)
    await add_customers(shop, 2, consents={})  # no consent at all
    sms_first = await add_customers(shop, 1, preferred=["sms"])
    erased = await add_customers(shop, 1)
    suppressed = await add_customers(shop, 1, phone=False)
    capped = await add_customers(shop, 1)
    denied = await add_customers(shop, 1, consents={"sms": ["service"]})
    async with db.tenant_tx(shop.ctx) as conn:
        await conn.execute(
            """insert into consents (tenant_id, customer_id, channel, purpose, status,
                                     legal_basis, source)
               values ($1, $2, 'email', 'marketing', 'withdrawn', 'consent', 'test')""",
            shop.ctx.tenant_id, denied[0])
        await conn.execute("update customers set email = 'not-an-email' where id = $1",
                           no_email[1])
    await refresh_segment(db, shop.ctx, shop.segment_id)  # the audience includes them...
    async with db.tenant_tx(shop.ctx) as conn:  # ...then they are erased or suppressed
        await conn.execute("update customers set erased_at = now() where id = $1", erased[0])
        email = await conn.fetchval("select email from customers where id = $1",
                                    suppressed[0])
        assert await suppress(conn, shop.ctx, db.keys, [("email", email, "complaint")]) == 1
    # a marketing email already went out that day: the daily rule is full
    await add_history(shop, [{"customer_id": capped[0],
                              "at": datetime(2030, 3, 4, 7, tzinfo=UTC)}])

    campaign = await run_campaign(shop, schedule=MONDAY_10H)
    decided = await recipients(shop, campaign.id)
    f = await funnel(db, shop.ctx, campaign.id)

    assert f.audience == 13 and f.pending == 0
    # a customer leaves at the furthest step any of its channels reached: the suppressed
    # email's owner still had SMS after step 1, and has no phone (step 2)
    assert _reasons(f, "suppression") == {"erased": 1}
    assert _reasons(f, "address") == {"no_address": 2}
    assert _reasons(f, "consent") == {"consent_missing": 2, "consent_withdrawn": 1}
    assert _reasons(f, "pressure") == {"cap:daily_any": 1}
    assert f.planned == 6 and f.channels == {"email": 3, "sms": 3}
    steps = [(s.step, s.entered, s.excluded) for s in f.steps]
    assert steps == [("suppression", 13, 1), ("address", 12, 2), ("consent", 10, 3),
                     ("quiet_hours", 7, 0), ("holdout", 7, 0), ("control_group", 7, 0),
                     ("pressure", 7, 1), ("dedupe", 6, 0), ("displaced", 6, 0)]

    for cid in ok:
        assert decided[cid]["step"] == "planned" and decided[cid]["channel"] == "email"
        assert decided[cid]["channels"] == {"sms": "dedupe:sent_on_email"}
    assert decided[no_email[0]]["channel"] == "sms"
    assert decided[no_email[0]]["channels"] == {"email": "no_address"}
    assert decided[no_email[1]]["channels"] == {"email": "invalid_address"}
    assert decided[nothing[0]]["reason"] == "no_address"
    assert decided[sms_first[0]]["channel"] == "sms"  # the customer's preference first
    assert decided[erased[0]]["reason"] == "erased"
    assert decided[suppressed[0]]["channels"] == {"email": "suppressed", "sms": "no_address"}
    assert decided[capped[0]]["reason"] == "cap:daily_any"
    assert decided[capped[0]]["channels"] == {"email": "cap:daily_any", "sms": "cap:daily_any"}
    assert decided[denied[0]]["channels"] == {"email": "consent_withdrawn",
                                              "sms": "consent_missing"}
    sent = await messages(shop, source_id=campaign.id)
    assert len(sent) == 6 and {m["customer_id"] for m in sent} == {
        c for c, d in decided.items() if d["step"] == "planned"}
    assert all(m["status"] == "planned" and m["priority"] == 50 for m in sent)
    # ids computed in SQL are the outbox's deterministic ids
    assert all(m["id"] == message_id(shop.ctx.tenant_id, "campaign", campaign.id, m["step"],
                                     m["customer_id"], "") for m in sent)
    assert {m["template_id"] for m in sent} == {shop.templates["email"], shop.templates["sms"]}
    assert all(m["scheduled_at"] == datetime(2030, 3, 4, 9, tzinfo=UTC) for m in sent)


async def test_quiet_hours_delay_abort_and_alert_bypass(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    plain = await add_customers(shop, 2)
    # quiet hours are local: 22:00 Paris is 16:00 in New York, inside this customer's own
    # quiet hours (15:00-17:00) but not the tenant's (21:00-08:00)
    ny = await add_customers(shop, 1, timezone="America/New_York",
                             quiet=(time(15), time(17)))
    # tenant quiet hours (21:00-08:00 Paris) then the customer's (07:30-09:00 Paris)
    chained = await add_customers(shop, 1, quiet=(time(7, 30), time(9)))

    delayed = await run_campaign(shop, schedule=MONDAY_22H)
    d = await recipients(shop, delayed.id)
    assert d[plain[0]]["scheduled_at"] == datetime(2030, 3, 5, 7, tzinfo=UTC)  # 08:00 Paris
    assert d[plain[0]]["delayed_from"] == datetime(2030, 3, 4, 21, tzinfo=UTC)
    assert d[chained[0]]["scheduled_at"] == datetime(2030, 3, 5, 8, tzinfo=UTC)  # 09:00
    assert d[ny[0]]["scheduled_at"] == datetime(2030, 3, 4, 22, tzinfo=UTC)  # 17:00 NY
    assert (await funnel(db, shop.ctx, delayed.id)).delayed_by_quiet_hours == 4

    aborted = await run_campaign(shop, schedule=MONDAY_22H, quiet_hours="abort",
                                 name="abort")
    f = await funnel(db, shop.ctx, aborted.id)
    assert _reasons(f, "quiet_hours") == {"quiet_hours": 4} and f.planned == 0

    alert = await run_campaign(shop, schedule=MONDAY_22H, category="alert",
                               purpose="traffic_info", bypass_quiet_hours=True,
                               priority=90, name="alert")
    a = await recipients(shop, alert.id)
    assert all(r["step"] == "planned" and r["delayed_from"] is None for r in a.values())
    assert {r["scheduled_at"] for r in a.values()} == {datetime(2030, 3, 4, 21, tzinfo=UTC)}

    # "at 10:00 in each customer's local time"
    local = await run_campaign(shop, schedule={"kind": "local_time", "date": "2030-03-06",
                                               "time": "10:00"}, name="local")
    lo = await recipients(shop, local.id)
    assert lo[plain[0]]["scheduled_at"] == datetime(2030, 3, 6, 9, tzinfo=UTC)
    assert lo[ny[0]]["scheduled_at"] == datetime(2030, 3, 6, 15, tzinfo=UTC)


async def test_quiet_hours_on_a_dst_night(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    ids = await add_customers(shop, 1)
    # 2030-03-31 is the spring-forward night in Paris; 22:00 Saturday → 08:00 CEST Sunday
    c = await run_campaign(shop, schedule={"kind": "at", "at": "2030-03-30T22:00:00+01:00"})
    r = (await recipients(shop, c.id))[ids[0]]
    assert r["scheduled_at"] == datetime(2030, 3, 31, 6, tzinfo=UTC)


async def test_holdout_control_group_and_variants(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    ids = await add_customers(shop, 400)
    group = await holdout.create_group(db, shop.ctx, HoldoutCreate(percent=25))
    async with db.tenant_tx(shop.ctx) as conn:
        salt = await conn.fetchval("select salt from holdout_groups where id = $1",
                                   uuid.UUID(group.id))
    held = {c for c in ids if holdout.bucket(salt, str(c)) < 2500}
    assert 50 < len(held) < 150

    c = await run_campaign(shop, schedule=SOON, control_percent=20,
                           variants=[{"name": "A", "split": 50},
                                     {"name": "B", "split": 50,
                                      "templates": {"email": shop.templates["email"]}}])
    d = await recipients(shop, c.id)
    assert {x for x, r in d.items() if r["step"] == "holdout"} == held
    control = {x for x, r in d.items() if r["step"] == "control_group"}
    assert 20 < len(control) < 100 and not control & held
    f = await funnel(db, shop.ctx, c.id)
    assert f.variants.keys() == {"A", "B"} and sum(f.variants.values()) == f.planned
    assert min(f.variants.values()) > f.planned * 0.3
    sent = {m["customer_id"]: m for m in await messages(shop, source_id=c.id)}
    assert all(sent[x]["step"] == r["variant"] for x, r in d.items() if r["step"] == "planned")
    assert all(m["id"] == message_id(shop.ctx.tenant_id, "campaign", c.id, m["step"],
                                     m["customer_id"], "") for m in sent.values())

    # the same customers land in the same groups on a second campaign; a service message
    # is not marketing: the holdout does not apply
    again = await run_campaign(shop, schedule=SOON, name="again", control_percent=20)
    assert {x for x, r in (await recipients(shop, again.id)).items()
            if r["step"] == "holdout"} == held
    service = await run_campaign(shop, schedule=SOON, name="service",
                                 category="service", purpose="service")
    assert "holdout" not in {r["step"] for r in (await recipients(shop, service.id)).values()}


async def test_one_communication_per_customer_per_campaign(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    ids = await add_customers(shop, 3)
    await use_policy(db, shop.ctx.tenant_id, [])
    campaign = await create_campaign(shop, schedule=MONDAY_10H)
    # this campaign already has a message for ids[0] (on SMS): nothing more, on any channel
    await add_history(shop, [{"customer_id": ids[0], "source_type": "campaign",
                              "source_id": campaign.id, "channel": "sms",
                              "status": "planned", "at": datetime(2030, 3, 4, 9, tzinfo=UTC)}])
    await plan_campaign(shop, campaign.id)
    d = await recipients(shop, campaign.id)
    assert d[ids[0]]["step"] == "dedupe" and d[ids[0]]["reason"] == "already_contacted"
    sent = await messages(shop, source_id=campaign.id)
    assert sorted(m["customer_id"] for m in sent) == sorted(ids)
    assert sorted(m["channel"] for m in sent) == ["email", "email", "sms"]


async def test_policy_caps_per_channel_category_and_tags(db, make_tenant):
    shop = await make_shop(db, make_tenant)
    ids = await add_customers(shop, 4)
    await use_policy(db, shop.ctx.tenant_id, [
        rule("sms_week", 0, "week", channel="sms"),
        rule("promo", 1, "rolling", days=7, tags=["promo"]),
    ])
    # customer 0: a promo email 3 days ago; customer 1: a transactional one (not counted)
    await add_history(shop, [
        {"customer_id": ids[0], "at": datetime(2030, 3, 1, 9, tzinfo=UTC), "tags": ["promo"]},
        {"customer_id": ids[1], "at": datetime(2030, 3, 3, 9, tzinfo=UTC), "tags": ["promo"],
         "category": "transactional", "purpose": "transactional"},
    ])
    c = await run_campaign(shop, schedule=MONDAY_10H, tags=["promo"])
    d = await recipients(shop, c.id)
    assert d[ids[0]]["reason"] == "cap:promo"
    assert d[ids[0]]["channels"] == {"email": "cap:promo", "sms": "cap:sms_week"}
    assert [d[x]["channel"] for x in ids[1:]] == ["email"] * 3
    untagged = await run_campaign(shop, schedule=MONDAY_10H, name="plain")
    assert (await recipients(shop, untagged.id))[ids[0]]["step"] == "planned"
