"""The collection plan: sources, fill rates and gaps, per tenant and rolled up for HQ."""

from __future__ import annotations

import pytest

from core.collection_plan.requirements import (
    Requirement,
    declare_requirements,
    withdraw_requirements,
)
from tests.conftest import auth

MAPPING = {"identifiers": {"email": "email"}, "traits": {"first_name": "first_name"},
           "event": {"type": "ticket_purchased", "id_column": "ticket",
                     "properties": {"product": "product", "amount": "amount"}}}
CSV = ("email,first_name,ticket,product,amount\n"
       "a@star-rennes.fr,Ana,T1,Pass,40\n"
       "b@star-rennes.fr,,T2,Ticket,2\n"
       "c@star-rennes.fr,Cy,T3,Ticket,2\n"
       "a@star-rennes.fr,Ana,T4,Ticket,2\n")


def _needs_pmr() -> list[Requirement]:
    return [Requirement("field", "plan_test_mobility", "accessibility journey", "route alerts"),
            Requirement("field", "first_name", "accessibility journey")]


@pytest.fixture
def pmr_requirement():
    declare_requirements(_needs_pmr)
    yield
    withdraw_requirements(_needs_pmr)


async def test_the_plan_shows_sources_fill_rates_and_what_nothing_feeds(
        tenant, hq_key, pmr_requirement):
    await tenant.enable(hq_key, "file_import")
    await tenant.connector("ticketing", "file_import", {"mapping": MAPPING})
    r = await tenant.request("POST", "/connectors/ticketing/uploads", content=CSV.encode())
    assert (await tenant.execute(r.json()["id"]))["rows_accepted"] == 4
    r = await tenant.request("POST", "/events", json={
        "message_id": "app-1", "type": "app_opened",
        "identifiers": {"email": "d@star-rennes.fr"}})
    assert r.status_code == 200, r.text
    r = await tenant.request("POST", "/model/fields", json={"name": "plan_test_mobility",
                                                            "type": "boolean"})
    assert r.status_code in (200, 201), r.text

    plan = (await tenant.request("GET", "/collection-plan")).json()
    assert plan["profiles"] == 4
    items = {(i["kind"], i["name"]): i for i in plan["items"]}
    first_name = items[("field", "first_name")]
    assert first_name["fill_rate"] == 0.5 and first_name["profiles_with_value"] == 2
    assert first_name["sources"] == ["ticketing"] and first_name["connectors"] == ["ticketing"]
    assert first_name["last_received_at"] is not None
    assert first_name["needed_by"] == ["accessibility journey",
                                       "relational plan (contact and personalisation)"]
    purchases = items[("event", "ticket_purchased")]
    assert purchases["profiles_with_value"] == 3 and purchases["fill_rate"] == 0.75
    assert purchases["sources"] == ["ticketing"]
    app = items[("event", "app_opened")]
    assert app["profiles_with_value"] == 1 and app["connectors"] == []
    email = items[("identifier", "email")]
    assert email["fill_rate"] == 1.0 and email["connectors"] == ["ticketing"]
    pmr = items[("field", "plan_test_mobility")]
    assert pmr["scope"] == "tenant" and pmr["fill_rate"] == 0.0
    missing = {(m["kind"], m["name"]) for m in plan["missing"]}
    assert ("field", "plan_test_mobility") in missing and ("event", "trip_validated") in missing
    trips = next(m for m in plan["missing"] if m["name"] == "trip_validated")
    assert trips["needed_by"] == "lifecycle canvas" and "fragile" in trips["reason"]
    assert ("event", "ticket_purchased") not in missing
    assert ("field", "first_name") not in missing


async def test_hq_sees_aggregates_across_tenants_and_tenants_cannot(
        tenant, hq_key, client, make_tenant, make_key):
    await tenant.enable(hq_key, "file_import")
    await tenant.connector("ticketing", "file_import", {"mapping": MAPPING})
    r = await tenant.request("POST", "/connectors/ticketing/uploads", content=CSV.encode())
    await tenant.execute(r.json()["id"])
    r = await client.get("/v1/hq/collection-plan", headers=auth(hq_key))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["tenants"] >= 1 and plan["profiles"] >= 3
    purchases = next(i for i in plan["items"]
                     if (i["kind"], i["name"]) == ("event", "ticket_purchased"))
    assert purchases["tenants_fed"] >= 1 and purchases["profiles_with_value"] >= 3
    assert "tenant_id" not in r.text  # aggregates only, no per-tenant rows
    trips = next(i for i in plan["items"] if (i["kind"], i["name"]) == ("event",
                                                                        "trip_validated"))
    assert trips["tenants_missing"] >= 1
    assert (await client.get("/v1/hq/collection-plan",
                             headers=auth(tenant.key))).status_code == 403
    other = await make_tenant("cp-b")
    key_b = await make_key(other.id)
    r = await client.get(f"/v1/tenants/{tenant.id}/collection-plan", headers=auth(key_b))
    assert r.status_code == 404
    mine = (await client.get(f"/v1/tenants/{other.id}/collection-plan",
                             headers=auth(key_b))).json()
    assert mine["profiles"] == 0
    assert all(not i["sources"] and not i["connectors"] for i in mine["items"])
