from __future__ import annotations

import pytest

from tests.conftest import auth
from tests.customers.factories import unique


@pytest.fixture(scope="module")
async def hq_fields(client, hq_key):
    """Adds one HQ extension field for the module (the core model is shared state)."""
    model = (await client.get("/v1/hq/model", headers=auth(hq_key))).json()
    fields = [{k: f[k] for k in ("name", "type", "required", "enum_values", "description")}
              for f in model["fields"]]
    fields.append({"name": "pmr_status", "type": "enum", "enum_values": ["none", "wheelchair"]})
    r = await client.put("/v1/hq/model", json={"fields": fields}, headers=auth(hq_key))
    assert r.status_code == 200, r.text
    return fields


async def test_hq_model_has_builtin_fields_and_the_core_tracking_plan(client, hq_key):
    model = (await client.get("/v1/hq/model", headers=auth(hq_key))).json()
    builtin = {f["name"] for f in model["fields"] if f["builtin"]}
    assert builtin == {"first_name", "last_name", "email", "phone", "language", "country",
                       "birth_date", "postal_code"}
    types = {e["name"] for e in model["event_types"]}
    assert {"trip_validated", "ticket_purchased", "subscription_started", "subscription_renewed",
            "subscription_cancelled", "support_ticket_opened", "support_ticket_closed",
            "nps_submitted", "form_submitted", "app_opened", "cart_abandoned",
            "loyalty_points_earned"} <= types


async def test_hq_cannot_remove_or_retype_builtin_fields(client, hq_key, hq_fields):
    r = await client.put("/v1/hq/model", json={"fields": hq_fields[1:]}, headers=auth(hq_key))
    assert r.status_code == 422 and r.json()["field"] == "fields"
    retyped = [dict(f, type="number") if f["name"] == "postal_code" else f for f in hq_fields]
    r = await client.put("/v1/hq/model", json={"fields": retyped}, headers=auth(hq_key))
    assert r.status_code == 422 and r.json()["field"].endswith(".type")


async def test_tenant_extends_the_model_but_never_redefines_core(tenant, hq_fields):
    for name in ("email", "pmr_status"):
        r = await tenant.post("/model/fields", {"name": name, "type": "string"})
        assert r.status_code == 409 and r.json()["field"] == "name"
    r = await tenant.post("/model/fields", {"name": "favourite_line", "type": "string"})
    assert r.status_code == 201, r.text
    r = await tenant.post("/model/fields", {"name": "bad", "type": "enum"})
    assert r.status_code == 422 and r.json()["field"] == "body.enum_values"
    names = {f["name"]: f["scope"] for f in (await tenant.get("/model")).json()["fields"]}
    assert names["pmr_status"] == "core" and names["favourite_line"] == "tenant"
    page = (await tenant.get("/model/fields", params={"limit": 3})).json()
    assert len(page["items"]) == 3 and page["next_cursor"]

    ids = {"app_user_id": unique("f")}
    r = await tenant.post("/identify", {"identifiers": ids, "traits": {
        "favourite_line": "T2", "pmr_status": "wheelchair", "loyalty_tier": "gold"}})
    assert r.status_code == 200, r.text
    profile = (await tenant.get(f"/customers/{r.json()['customer_id']}")).json()["profile"]
    assert profile["attributes"] == {"favourite_line": "T2", "pmr_status": "wheelchair",
                                     "loyalty_tier": "gold"}
    r = await tenant.post("/identify", {"identifiers": ids, "traits": {"favourite_line": 3}})
    assert r.status_code == 422 and r.json()["field"] == "traits.favourite_line"
    r = await tenant.post("/identify", {"identifiers": ids, "traits": {"pmr_status": "x"}})
    assert r.status_code == 422 and r.json()["field"] == "traits.pmr_status"
    r = await tenant.post("/identify", {"identifiers": ids, "traits": {"country": "France"}})
    assert r.status_code == 422 and r.json()["field"] == "traits.country"


async def test_strict_tenants_refuse_unknown_traits_and_required_fields_apply(tenant):
    r = await tenant.put("/model/settings", {"strict_traits": True})
    assert r.status_code == 200 and r.json()["strict_traits"] is True
    r = await tenant.post("/identify", {"identifiers": {"app_user_id": unique("s")},
                                        "traits": {"shoe_size": 42}})
    assert r.status_code == 422 and r.json()["field"] == "traits.shoe_size"
    r = await tenant.post("/model/fields", {"name": "contract_no", "type": "string",
                                            "required": True})
    assert r.status_code == 201
    r = await tenant.post("/identify", {"identifiers": {"app_user_id": unique("s")}})
    assert r.status_code == 422 and r.json()["field"] == "traits.contract_no"
    r = await tenant.post("/identify", {"identifiers": {"app_user_id": unique("s")},
                                        "traits": {"contract_no": "C-1"}})
    assert r.status_code == 200
    # Events still create (anonymous) profiles: they carry no traits.
    r = await tenant.post("/events", {"message_id": unique("e"), "type": "app_opened",
                                      "identifiers": {"app_user_id": unique("s")}})
    assert r.status_code == 200 and r.json()["status"] == "accepted"


async def test_local_event_types_and_quarantine_policy(tenant):
    r = await tenant.post("/model/event-types", {
        "name": "bike_rented", "properties": {"station": {"type": "string", "required": True},
                                              "minutes": {"type": "number", "min": 0}}})
    assert r.status_code == 201, r.text
    r = await tenant.post("/model/event-types", {"name": "app_opened"})
    assert r.status_code == 409
    uid = {"app_user_id": unique("q")}
    items = [{"message_id": unique("q"), "type": "bike_rented", "identifiers": uid,
              "properties": {"station": "Part-Dieu", "minutes": 12}},
             {"message_id": unique("q"), "type": "teleported", "identifiers": uid},
             {"message_id": unique("q"), "type": "bike_rented", "identifiers": uid,
              "properties": {"minutes": -3}}]
    results = (await tenant.post("/events:batch", {"items": items})).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected"]
    assert results[1]["field"] == "items[1].type"
    assert results[2]["field"] in {"items[2].properties.station", "items[2].properties.minutes"}
    assert "station is required" in results[2]["reason"]
    assert "minutes must be at least 0" in results[2]["reason"]

    r = await tenant.put("/model/settings", {"unknown_events": "quarantine",
                                             "invalid_properties": "quarantine"})
    assert r.status_code == 200
    items = [dict(i, message_id=unique("q")) for i in items]
    results = (await tenant.post("/events:batch", {"items": items})).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "quarantined", "quarantined"]
    again = (await tenant.post("/events:batch", {"items": items})).json()["results"]
    assert [r["status"] for r in again] == ["duplicate"] * 3
    held = (await tenant.get("/events/quarantine")).json()["items"]
    assert [h["message_id"] for h in held] == [items[2]["message_id"], items[1]["message_id"]]
    assert {r["field"] for r in held[0]["reasons"]} == {"station", "minutes"}
    assert held[1]["reasons"][0]["field"] == "type"
    # Once the plan knows the type, the same event is accepted and leaves the quarantine.
    await tenant.post("/model/event-types", {"name": "teleported"})
    r = await tenant.post("/events", items[1])
    assert r.json()["status"] == "accepted"
    held = (await tenant.get("/events/quarantine")).json()["items"]
    assert [h["message_id"] for h in held] == [items[2]["message_id"]]
