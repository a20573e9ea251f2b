"""The demo group is real data flowing through the real services."""

from __future__ import annotations

from core.demo import DEMO_TENANTS, load_demo
from tests.conftest import auth
from tests.platform.demo_keys import demo_keys


async def test_demo_loads_three_networks_with_customers_segments_and_stages(client, db):
    created = await demo_keys(db)
    assert set(created) == {t.id for t in DEMO_TENANTS}
    key = created["casablanca"]
    r = await client.get("/v1/tenants/casablanca/customers", headers=auth(key),
                         params={"phone": "+212661230007"})
    assert r.status_code == 200, r.text
    people = r.json()["items"]
    assert len(people) == 1 and people[0]["country"] == "MA"
    summary = (await client.get("/v1/tenants/casablanca/stages/summary",
                                headers=auth(key))).json()
    assert sum(s["count"] for s in summary["stages"]) >= 290
    segments = (await client.get("/v1/tenants/casablanca/segments", headers=auth(key))).json()
    assert [s["name"] for s in segments["items"]] == ["Frequent riders"]
    members = segments["items"][0]["member_count"]

    # A draft newsletter to that segment: its simulated funnel, nothing sent.
    campaigns = (await client.get("/v1/tenants/casablanca/campaigns",
                                  headers=auth(key))).json()["items"]
    assert [(c["name"], c["status"]) for c in campaigns] == [("Monthly newsletter", "draft")]
    r = await client.post(f"/v1/tenants/casablanca/campaigns/{campaigns[0]['id']}/simulate",
                          headers=auth(key))
    assert r.status_code == 200, r.text
    funnel = r.json()
    assert funnel["simulated"] and funnel["audience"] == members > 0
    assert 0 < funnel["planned"] < members
    out = {step["step"]: step["excluded"] for step in funnel["steps"]}
    assert out["consent"] > 0  # the demo's customers who did not consent
    # the universal holdout is on (5%: its buckets are random, so how many of these few
    # dozen it holds out varies, but never more than it holds)
    overview = (await client.get("/v1/tenants/casablanca/holdout", headers=auth(key))).json()
    group = overview["active"]
    assert overview["in_effect"] and group["percent"] == 5
    held = (await client.get(f"/v1/tenants/casablanca/holdout/groups/{group['id']}/members",
                             headers=auth(key), params={"limit": 500})).json()["items"]
    assert 0 < len(held) < 300 and out["holdout"] <= len(held)
    messages = (await client.get("/v1/tenants/casablanca/messages", headers=auth(key))).json()
    assert messages["items"] == []

    assert await load_demo(db) == []  # a second run changes nothing
