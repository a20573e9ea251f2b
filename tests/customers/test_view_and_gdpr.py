from __future__ import annotations

from tests.customers.factories import unique


async def test_timeline_is_one_paginated_stream_newest_first(tenant):
    uid = {"app_user_id": unique("t")}
    items = [{"message_id": unique("t"), "type": "app_opened", "identifiers": uid,
              "occurred_at": f"2026-01-{day:02d}T12:00:00Z"} for day in range(1, 8)]
    results = (await tenant.post("/events:batch", {"items": items})).json()["results"]
    cid = results[0]["customer_id"]
    for channel in ("agency", "call_centre"):
        r = await tenant.post(f"/customers/{cid}/notes",
                              {"author": "Nadia (agence Part-Dieu)", "channel": channel,
                               "text": "Lost card replaced"})
        assert r.status_code == 201, r.text
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await tenant.get(f"/customers/{cid}/timeline", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [t["kind"] for t in seen] == ["note"] * 2 + ["event"] * 7
    assert [t["at"] for t in seen[2:]] == sorted((t["at"] for t in seen[2:]), reverse=True)
    assert len({(t["kind"], t["ref"]) for t in seen}) == 9
    only_notes = (await tenant.get(f"/customers/{cid}/timeline",
                                   params={"kind": "note"})).json()["items"]
    assert [n["data"]["channel"] for n in only_notes] == ["call_centre", "agency"]
    r = await tenant.get(f"/customers/{cid}/timeline", params={"kind": "letters"})
    assert r.status_code == 422 and r.json()["field"] == "kind"
    r = await tenant.post(f"/customers/{cid}/notes", {"author": "x", "channel": "fax",
                                                      "text": "t"})
    assert r.status_code == 400 and r.json()["field"] == "channel"


async def test_lookup_by_identifier(tenant):
    phone = "06 98 76 54 31"
    cid = (await tenant.post("/identify", {"identifiers": {"phone": phone}})).json()[
        "customer_id"]
    for params in ({"phone": "+33698765431"}, {"identifier": "phone:0698765431"}):
        found = (await tenant.get("/customers", params=params)).json()["items"]
        assert [c["id"] for c in found] == [cid]
    assert (await tenant.get("/customers", params={"email": "nobody.here@laposte.net"})
            ).json()["items"] == []
    r = await tenant.get("/customers", params={"identifier": "shoe:42"})
    assert r.status_code == 422 and r.json()["field"] == "identifier"
    r = await tenant.get("/customers", params={"phone": "12"})
    assert r.status_code == 422 and r.json()["field"] == "phone"
    r = await tenant.get("/customers", params={"phone": phone, "email": "a@laposte.net"})
    assert r.status_code == 422


async def test_export_then_erase_then_refuse_reingestion(tenant, db):
    email = f"{unique('g')}@laposte.net"
    ids = {"email": email, "loyalty_id": unique("LOY")}
    cid = (await tenant.post("/identify", {"identifiers": ids, "traits": {
        "first_name": "Paul", "postal_code": "69007", "country": "FR"}})).json()["customer_id"]
    await tenant.post("/events", {"message_id": unique("g"), "type": "nps_submitted",
                                  "identifiers": {"email": email},
                                  "properties": {"score": 3, "comment": "bus always late"}})
    await tenant.put(f"/customers/{cid}/consents", {"items": [
        {"channel": "email", "purpose": "marketing", "status": "granted",
         "legal_basis": "consent", "source": "web", "proof": "ip 192.0.2.4"}]})
    await tenant.post(f"/customers/{cid}/notes", {"author": "chat bot", "channel": "chat",
                                                  "text": "Paul asked for a refund"})

    exported = (await tenant.post(f"/customers/{cid}/export")).json()
    assert exported["profile"]["first_name"] == "Paul"
    assert {i["kind"] for i in exported["identifiers"]} == {"email", "loyalty_id"}
    assert exported["events"][0]["properties"]["comment"] == "bus always late"
    assert exported["consent_history"][0]["proof"] == "ip 192.0.2.4"
    assert exported["notes"][0]["text"] == "Paul asked for a refund"

    r = await tenant.post(f"/customers/{cid}/erase")
    assert r.status_code == 200, r.text
    assert r.json()["identifiers_suppressed"] == 2 and r.json()["events_anonymised"] == 1
    view = (await tenant.get(f"/customers/{cid}")).json()
    assert view["profile"]["first_name"] is None and view["profile"]["erased_at"]
    assert view["profile"]["country"] == "FR"  # coarse, kept for aggregates
    assert view["identifiers"] == [] and view["consents"] == []
    timeline = (await tenant.get(f"/customers/{cid}/timeline")).json()["items"]
    assert [t["data"]["properties"] for t in timeline if t["kind"] == "event"] == [{}]
    assert not [t for t in timeline if t["kind"] == "note"]

    r = await tenant.post("/identify", {"identifiers": {"email": email.upper()}})
    assert r.status_code == 422 and r.json()["field"] == "identifiers.email"
    assert "suppression list" in r.json()["detail"]
    r = await tenant.post("/events:batch", {"items": [
        {"message_id": unique("g"), "type": "app_opened", "identifiers": ids},
        {"message_id": unique("g"), "type": "app_opened", "customer_id": cid}]})
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["rejected", "rejected"]
    assert results[1]["field"] == "items[1].customer_id"
    audit = (await tenant.get("/audit")).json()["items"]
    erased = [a for a in audit if a["action"] == "customer.erased"]
    assert erased and email not in str(erased[0]["details"])
