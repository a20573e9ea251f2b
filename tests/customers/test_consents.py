from __future__ import annotations

from tests.customers.factories import unique


async def _customer(tenant) -> str:
    r = await tenant.post("/identify", {"identifiers": {"app_user_id": unique("c")}})
    return r.json()["customer_id"]


async def test_consents_keep_the_latest_decision_and_the_full_history(tenant):
    cid = await _customer(tenant)
    r = await tenant.put(f"/customers/{cid}/consents", {"items": [
        {"channel": "email", "purpose": "marketing", "status": "granted",
         "legal_basis": "consent", "source": "web_form", "proof": "form v3, checkbox ticked",
         "at": "2026-01-10T10:00:00Z"},
        {"channel": "sms", "purpose": "traffic_info", "status": "granted",
         "legal_basis": "legitimate_interests", "source": "app"}]})
    assert r.status_code == 200, r.text
    assert {(c["channel"], c["purpose"], c["status"]) for c in r.json()} == {
        ("email", "marketing", "granted"), ("sms", "traffic_info", "granted")}
    r = await tenant.put(f"/customers/{cid}/consents", {"items": [
        {"channel": "email", "purpose": "marketing", "status": "withdrawn",
         "legal_basis": "consent", "source": "unsubscribe_link", "at": "2026-03-01T08:00:00Z"}]})
    assert r.status_code == 200
    # A decision older than the current one is history, not state.
    r = await tenant.put(f"/customers/{cid}/consents", {"items": [
        {"channel": "email", "purpose": "marketing", "status": "granted",
         "legal_basis": "consent", "source": "import", "at": "2025-06-01T08:00:00Z"}]})
    current = {(c["channel"], c["purpose"]): c for c in r.json()}
    assert current[("email", "marketing")]["status"] == "withdrawn"
    assert current[("email", "marketing")]["source"] == "unsubscribe_link"
    history = (await tenant.get(f"/customers/{cid}/consents/history")).json()["items"]
    assert [h["status"] for h in history] == ["granted", "withdrawn", "granted", "granted"]
    assert history[-1]["proof"] == "form v3, checkbox ticked"
    view = (await tenant.get(f"/customers/{cid}")).json()
    assert len(view["consents"]) == 2
    assert view["consents"] == (await tenant.get(f"/customers/{cid}/consents")).json()


async def test_consent_input_is_checked(tenant):
    cid = await _customer(tenant)
    base = {"channel": "email", "purpose": "marketing", "status": "granted",
            "legal_basis": "consent", "source": "web"}
    r = await tenant.put(f"/customers/{cid}/consents", {"items": [dict(base, purpose="spam")]})
    assert r.status_code == 400 and r.json()["field"] == "items[0].purpose"
    r = await tenant.put(f"/customers/{cid}/consents",
                         {"items": [dict(base, at="2999-01-01T00:00:00Z")]})
    assert r.status_code == 422 and r.json()["field"] == "items[0].at"
    r = await tenant.put("/customers/00000000-0000-4000-8000-000000000000/consents",
                         {"items": [base]})
    assert r.status_code == 404


async def test_preferences_with_quiet_hours_and_line_subscriptions(tenant):
    cid = await _customer(tenant)
    prefs = {"channels": ["push", "sms", "email"], "language": "fr",
             "quiet_hours": {"start": "21:30:00", "end": "07:00:00"},
             "timezone": "Europe/Paris",
             "subscriptions": [{"kind": "line", "ref": "T1"}, {"kind": "stop", "ref": "S42"},
                               {"kind": "line", "ref": "T1"}]}
    r = await tenant.put(f"/customers/{cid}/preferences", prefs)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["channels"] == ["push", "sms", "email"]
    assert body["quiet_hours"] == {"start": "21:30:00", "end": "07:00:00"}
    assert body["subscriptions"] == [{"kind": "line", "ref": "T1"}, {"kind": "stop", "ref": "S42"}]
    r = await tenant.put(f"/customers/{cid}/preferences", dict(prefs, subscriptions=[
        {"kind": "line", "ref": "C3"}]))
    assert r.json()["subscriptions"] == [{"kind": "line", "ref": "C3"}]
    assert (await tenant.get(f"/customers/{cid}/preferences")).json()["timezone"] == \
        "Europe/Paris"
    # the 360 view (one statement) shows the same preferences as their own endpoint
    view = (await tenant.get(f"/customers/{cid}")).json()
    assert view["preferences"] == (await tenant.get(f"/customers/{cid}/preferences")).json()
    assert view["preferences"]["quiet_hours"] == {"start": "21:30:00", "end": "07:00:00"}
    r = await tenant.put(f"/customers/{cid}/preferences", dict(prefs, timezone="Mars/Base"))
    assert r.status_code == 422 and r.json()["field"] == "timezone"
    r = await tenant.put(f"/customers/{cid}/preferences", dict(prefs, channels=["sms", "sms"]))
    assert r.status_code == 422 and r.json()["field"] == "channels"
