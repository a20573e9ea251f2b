"""The demo group is real data flowing through the real services."""

from __future__ import annotations

from core.demo import DEMO_TENANTS, load_demo
from tests.conftest import auth


async def test_demo_loads_three_networks_with_customers_segments_and_stages(client, db):
    created = await load_demo(db)
    assert {k.tenant_id for k in created} == {t.id for t in DEMO_TENANTS}
    key = next(k.key for k in created if k.tenant_id == "casablanca")
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
    assert await load_demo(db) == []  # a second run changes nothing
