from __future__ import annotations

import asyncio

from tests.customers.factories import unique


async def _identify(tenant, identifiers, traits=None, source="api", **extra):
    body = {"identifiers": identifiers, "traits": traits or {}, **extra}
    r = await tenant.post(f"/identify?source={source}", body)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_record_linking_two_profiles_merges_them_into_the_older(tenant):
    email, phone = f"{unique('m')}@laposte.net", "+33611223344"
    older = (await _identify(tenant, {"email": email}, {"first_name": "Lea"}))["customer_id"]
    newer = (await _identify(tenant, {"phone": phone}, {"last_name": "Roux"}))["customer_id"]
    r = await tenant.post("/events", {"message_id": unique("e"), "type": "app_opened",
                                      "identifiers": {"phone": phone}})
    assert r.json()["customer_id"] == newer
    linked = await _identify(tenant, {"email": email, "phone": phone})
    assert linked["customer_id"] == older

    view = (await tenant.get(f"/customers/{older}")).json()
    assert (view["profile"]["first_name"], view["profile"]["last_name"]) == ("Lea", "Roux")
    assert {i["kind"] for i in view["identifiers"]} == {"email", "phone"}
    assert view["merged_ids"] == [newer]
    # The merged-away id keeps working: it answers with the survivor.
    assert (await tenant.get(f"/customers/{newer}")).json()["profile"]["id"] == older
    merges = (await tenant.get(f"/customers/{older}/merges")).json()["items"]
    assert len(merges) == 1
    assert merges[0]["survivor_id"] == older and merges[0]["merged_id"] == newer
    assert merges[0]["reason"]["kind"] == "phone"
    assert merges[0]["details"]["events_repointed"] == 1
    timeline = (await tenant.get(f"/customers/{older}/timeline")).json()["items"]
    assert [t["kind"] for t in timeline] == ["merge", "event"]
    assert timeline[1]["data"]["customer_id"] == older  # the event was re-pointed


async def test_per_kind_limit_demotes_instead_of_merging(tenant):
    email = f"{unique('l')}@laposte.net"
    first = await _identify(tenant, {"ticketing_id": "TK-1001", "email": email})
    # Same person by email, but a second ticketing account: attached as demoted.
    second = await _identify(tenant, {"ticketing_id": "TK-1002", "email": email})
    assert second["customer_id"] == first["customer_id"]
    assert "demoted" in second["reason"]
    view = (await tenant.get(f"/customers/{first['customer_id']}")).json()
    status = {i["value"]: i["status"] for i in view["identifiers"] if i["kind"] == "ticketing_id"}
    assert status == {"TK-1001": "active", "TK-1002": "demoted"}

    # Two profiles each holding a ticketing account never merge through a weaker link.
    other = await _identify(tenant, {"ticketing_id": "TK-2000", "phone": "+33622334455"})
    linked = await _identify(tenant, {"ticketing_id": "TK-1001", "phone": "+33622334455"})
    assert linked["customer_id"] == first["customer_id"]
    assert "not merged" in linked["reason"]
    assert (await tenant.get(f"/customers/{other['customer_id']}")).json()["profile"][
        "merged_into"] is None


async def test_blocked_values_never_merge(tenant):
    a = await _identify(tenant, {"app_user_id": unique("a"), "email": "test@test.com"})
    b = await _identify(tenant, {"app_user_id": unique("b"), "email": "test@test.com",
                                 "phone": "0600000000"})
    assert a["customer_id"] != b["customer_id"]
    view = (await tenant.get(f"/customers/{a['customer_id']}")).json()
    assert [i["kind"] for i in view["identifiers"]] == ["app_user_id"]
    r = await tenant.post("/identify", {"identifiers": {"email": "null@example.com"}})
    assert r.status_code == 422 and r.json()["field"] == "identifiers"


async def test_tenant_overlay_blocks_values_and_respects_hq_locks(tenant):
    r = await tenant.put("/identity-rules", {"blocked": {"loyalty_id": ["CARTE-DEMO"]},
                                             "kinds": {"email": {"priority": 95}}})
    assert r.status_code == 200, r.text
    assert r.json()["effective"]["kinds"]["email"]["priority"] == 95
    assert r.json()["effective"]["kinds"]["ticketing_id"]["limit"] == 1
    one = await _identify(tenant, {"loyalty_id": "carte-demo", "app_user_id": unique("x")})
    two = await _identify(tenant, {"loyalty_id": "CARTE-DEMO", "app_user_id": unique("y")})
    assert one["customer_id"] != two["customer_id"]
    r = await tenant.put("/identity-rules", {"kinds": {"ticketing_id": {"limit": 3}}})
    assert r.status_code == 403 and r.json()["field"] == "kinds.ticketing_id"
    r = await tenant.put("/identity-rules", {"kinds": {"fax": {"priority": 1}}})
    assert r.status_code == 422 and r.json()["field"] == "kinds.fax"


async def test_survivorship_rules(tenant):
    r = await tenant.put("/identity-rules", {"survivorship": {
        "first_name": {"rule": "source_priority", "sources": ["crm", "web"]}}})
    assert r.status_code == 200, r.text
    ids = {"app_user_id": unique("s")}
    cid = (await _identify(tenant, ids, {"first_name": "Jo", "birth_date": "1980-01-02",
                                         "last_name": "Old"}, source="web"))["customer_id"]
    await _identify(tenant, ids, {"first_name": "Joanna"}, source="crm")
    await _identify(tenant, ids, {"first_name": "Jojo", "birth_date": "1999-09-09"},
                    source="web")
    # most_recent by the record's own time: an older record does not win.
    await _identify(tenant, ids, {"last_name": "Ancient"}, timestamp="2001-01-01T00:00:00Z")
    profile = (await tenant.get(f"/customers/{cid}")).json()["profile"]
    assert profile["first_name"] == "Joanna"      # source priority
    assert profile["birth_date"] == "1980-01-02"  # first seen (HQ default for birth_date)
    assert profile["last_name"] == "Old"          # most recent


async def test_events_resolve_create_and_accept_customer_ids(tenant):
    uid = unique("n")
    r = await tenant.post("/events", {"message_id": unique("e"), "type": "app_opened",
                                      "identifiers": {"app_user_id": uid}})
    created = r.json()["customer_id"]
    found = (await tenant.get("/customers", params={"identifier": f"app_user_id:{uid}"})).json()
    assert [c["id"] for c in found["items"]] == [created]
    r = await tenant.post("/events", {"message_id": unique("e"), "type": "app_opened",
                                      "customer_id": created})
    assert r.json() == {"index": 0, "status": "accepted", "customer_id": created}
    r = await tenant.post("/events", {"message_id": unique("e"), "type": "app_opened",
                                      "customer_id": "00000000-0000-4000-8000-000000000000"})
    assert r.status_code == 422 and r.json()["field"] == "customer_id"


async def test_concurrent_batches_with_the_same_new_identifiers_make_one_profile(tenant):
    email = f"{unique('c')}@laposte.net"
    batches = [{"items": [{"message_id": unique("cc"), "type": "app_opened",
                           "identifiers": {"email": email, "app_user_id": f"app-{email}"}}]}
               for _ in range(6)]
    responses = await asyncio.gather(*[tenant.post("/events:batch", b) for b in batches])
    customers = {r.json()["results"][0]["customer_id"] for r in responses}
    assert len(customers) == 1
    found = (await tenant.get("/customers", params={"email": email})).json()["items"]
    assert len(found) == 1 and found[0]["merged_into"] is None
