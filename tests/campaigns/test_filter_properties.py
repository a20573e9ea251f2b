"""Property: for random customers (addresses, consents, suppressed addresses, preferred
channels, time zones, quiet hours) and a random schedule and quiet-hours mode, each
recipient's decision is the one a plain Python reading of the rules gives: the best-ranked
channel with an address, not suppressed, with consent; the send time after the tenant's
and the customer's quiet hours (or excluded in abort mode); one message per customer."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.messaging.statuses import suppress
from core.pressure.windows import next_allowed
from tests.campaigns.factories import add_customers, make_shop, messages, recipients, run_campaign
from tests.pressure.factories import use_policy

TENANT_QUIET = (time(21), time(8))
people = st.lists(st.fixed_dictionaries({
    "email": st.booleans(), "phone": st.booleans(),
    "consents": st.sets(st.sampled_from(["email", "sms"])),
    "suppressed": st.sets(st.sampled_from(["email", "sms"])),
    "preferred": st.sampled_from([[], ["sms"], ["email"], ["sms", "email"]]),
    "zone": st.sampled_from([None, "America/New_York", "Asia/Tokyo"]),
    "quiet": st.one_of(st.none(), st.tuples(st.integers(0, 23), st.integers(0, 23)).filter(
        lambda q: q[0] != q[1])),
}), min_size=1, max_size=6)


def expected(person: dict, at: datetime, abort: bool, tz: str) -> tuple[str, str | None,
                                                                        datetime | None]:
    """(step, channel, send time) by the rules, in plain Python."""
    order = person["preferred"] + [c for c in ("email", "sms") if c not in person["preferred"]]
    usable = [c for c in order
              if person["email" if c == "email" else "phone"]
              and c not in person["suppressed"] and c in person["consents"]]
    if not usable:
        return "excluded", None, None
    zone = person["zone"] or tz
    quiet = [TENANT_QUIET]
    if person["quiet"]:
        quiet.append((time(person["quiet"][0]), time(person["quiet"][1])))
    allowed = next_allowed(at, zone, quiet)
    if allowed is None or (abort and allowed != at):
        return "quiet_hours", None, None
    return "planned", usable[0], allowed


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(crowd=people, hour=st.integers(0, 23), abort=st.booleans())
async def test_each_decision_follows_the_rules(db, make_tenant, crowd, hour, abort):
    shop = await make_shop(db, make_tenant, "fprop")
    await use_policy(db, shop.ctx.tenant_id, [], quiet=(21 * 60, 8 * 60))
    ids = []
    for p in crowd:
        ids += await add_customers(
            shop, 1, email=p["email"], phone=p["phone"],
            consents={c: ["marketing"] for c in p["consents"]},
            timezone=p["zone"], preferred=p["preferred"],
            quiet=(time(p["quiet"][0]), time(p["quiet"][1])) if p["quiet"] else None)
    async with db.tenant_tx(shop.ctx) as conn:
        for cid, p in zip(ids, crowd, strict=True):
            row = await conn.fetchrow("select email, phone from customers where id = $1", cid)
            entries = [("email", row["email"], "test")] if "email" in p["suppressed"] \
                and row["email"] else []
            if "sms" in p["suppressed"] and row["phone"]:
                entries.append(("phone", row["phone"], "test"))
            await suppress(conn, shop.ctx, db.keys, entries)
    at = datetime(2030, 5, 14, tzinfo=UTC) + timedelta(hours=hour)
    campaign = await run_campaign(shop, schedule={"kind": "at", "at": at.isoformat()},
                                  quiet_hours="abort" if abort else "delay")
    decided = await recipients(shop, campaign.id)
    sent = {m["customer_id"]: m for m in await messages(shop, source_id=campaign.id)}
    for cid, p in zip(ids, crowd, strict=True):
        step, channel, when = expected(p, at, abort, shop.ctx.timezone)
        got = decided[cid]
        if step == "planned":
            assert got["step"] == "planned" and got["channel"] == channel, (p, got)
            assert got["scheduled_at"] == when and sent[cid]["scheduled_at"] == when
            assert sent[cid]["channel"] == channel
        else:
            assert got["step"] != "planned" and cid not in sent, (p, got)
            if step == "quiet_hours":
                assert got["step"] == "quiet_hours"
    assert len(sent) == sum(1 for r in decided.values() if r["step"] == "planned")
