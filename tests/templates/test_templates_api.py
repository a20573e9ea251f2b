"""HQ master templates, tenant variants under approval, locking, previews, isolation."""

from __future__ import annotations

import pytest

from tests.conftest import auth
from tests.templates.factories import charter, hq_template, unique_id

pytestmark = pytest.mark.asyncio


async def identify(client, tenant_id: str, key: str, **traits) -> str:
    email = traits.pop("email", f"{unique_id('c')}@reseau-lyon.fr")
    r = await client.post(f"/v1/tenants/{tenant_id}/identify", headers=auth(key),
                          json={"identifiers": {"email": email}, "traits": traits})
    assert r.status_code == 200, r.text
    return r.json()["customer_id"]


@pytest.fixture
async def pair(client, make_tenant, make_key):
    a, b = await make_tenant("tpl-a"), await make_tenant("tpl-b")
    return (a, await make_key(a.id)), (b, await make_key(b.id))


async def test_hq_publishes_and_only_pilot_tenants_see_the_template(client, db, hq_key, pair):
    (a, key_a), (b, key_b) = pair
    template_id = await hq_template(db, pilots=[a.id])
    r = await client.get(f"/v1/hq/templates/{template_id}", headers=auth(hq_key))
    assert r.status_code == 200
    assert {c["locale"] for c in r.json()["contents"]} == {"fr-FR", "en-GB"}
    r = await client.get(f"/v1/tenants/{a.id}/templates/{template_id}", headers=auth(key_a))
    assert r.status_code == 200, r.text
    assert [s["source"] for s in r.json()["locales"]] == ["hq", "hq"]
    listed = await client.get(f"/v1/tenants/{a.id}/templates?channel=email", headers=auth(key_a))
    assert template_id in [t["id"] for t in listed.json()["items"]]
    # Tenant B is not a pilot: the template does not exist for it.
    r = await client.get(f"/v1/tenants/{b.id}/templates/{template_id}", headers=auth(key_b))
    assert r.status_code == 404
    # Propagating to all tenants (empty pilot list) makes it visible.
    r = await client.patch(f"/v1/hq/templates/{template_id}", headers=auth(hq_key),
                           json={"pilot_tenants": []})
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/tenants/{b.id}/templates/{template_id}", headers=auth(key_b))
    assert r.status_code == 200


async def test_hq_template_validation_names_the_field(client, db, hq_key):
    await charter(db)
    base = {"id": unique_id("bad"), "name": "x", "channel": "email", "default_locale": "fr-FR"}
    cases = [
        ({"contents": {"fr-FR": {"text": "hi"}}}, "contents.fr-FR.subject"),
        ({"contents": {"fr-FR": {"subject": "s", "text": "{% if %}"}}}, "contents.fr-FR.text"),
        ({"contents": {"fr-FR": {"subject": "s", "text": "{{ secret.x }}"}}},
         "contents.fr-FR.text"),
        ({"contents": {"fr-FR": {"subject": "s", "text": "t"}}, "html_layout": "nope"},
         "html_layout"),
        ({"contents": {"en-GB": {"subject": "s", "text": "t"}}}, "contents"),
    ]
    for extra, field in cases:
        r = await client.post("/v1/hq/templates", headers=auth(hq_key), json=base | extra)
        assert r.status_code == 422, (extra, r.text)
        assert r.json()["field"] == field, (extra, r.json())
    sms = {"id": unique_id("sms"), "name": "x", "channel": "sms", "default_locale": "fr-FR",
           "contents": {"fr-FR": {"text": "t", "html": "<p>no</p>"}}}
    r = await client.post("/v1/hq/templates", headers=auth(hq_key), json=sms)
    assert r.status_code == 422 and r.json()["field"] == "contents.fr-FR.html"


async def test_translation_workflow_draft_submit_approve_then_used(client, db, hq_key, pair):
    (a, key_a), _ = pair
    template_id = await hq_template(db, pilots=[a.id], contents={
        "fr-FR": {"subject": "Info {{ event.line }}", "text": "Ligne {{ event.line }}"}})
    base = f"/v1/tenants/{a.id}/templates/{template_id}"
    draft = {"locale": "en-GB", "content": {"subject": "News {{ event.line }}",
                                            "text": "Line {{ event.line }} for "
                                                    "{{ customer.first_name }}"}}
    r = await client.post(f"{base}/variants", headers=auth(key_a), json=draft)
    assert r.status_code == 201, r.text
    variant = r.json()
    assert variant["status"] == "draft" and variant["problems"] == []
    vid = variant["id"]
    # One variant in the works per locale.
    r = await client.post(f"{base}/variants", headers=auth(key_a), json=draft)
    assert r.status_code == 409 and r.json()["field"] == "locale"
    # Not a locale of the tenant.
    r = await client.post(f"{base}/variants", headers=auth(key_a),
                          json=draft | {"locale": "de-DE"})
    assert r.status_code == 422 and r.json()["field"] == "locale"
    # Approving a draft that was not submitted is refused.
    r = await client.post(f"{base}/variants/{vid}/approve", headers=auth(key_a), json={})
    assert r.status_code == 409
    r = await client.patch(f"{base}/variants/{vid}", headers=auth(key_a),
                           json={"content": draft["content"] | {"subject": "Line news"}})
    assert r.status_code == 200 and r.json()["content"]["subject"] == "Line news"
    r = await client.post(f"{base}/variants/{vid}/submit", headers=auth(key_a))
    assert r.status_code == 200 and r.json()["status"] == "submitted", r.text
    # Submitted: no more edits.
    r = await client.patch(f"{base}/variants/{vid}", headers=auth(key_a), json={"comment": "x"})
    assert r.status_code == 409
    # HQ cannot approve on the tenant's behalf; a key without admin cannot either.
    r = await client.post(f"{base}/variants/{vid}/approve", headers=auth(hq_key), json={})
    assert r.status_code == 403
    r = await client.post(f"{base}/variants/{vid}/approve", headers=auth(key_a),
                          json={"comment": "ok"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    assert r.json()["decided_by"].startswith("tenant_key:")
    state = (await client.get(base, headers=auth(key_a))).json()
    en = next(s for s in state["locales"] if s["locale"] == "en-GB")
    assert en["source"] == "tenant" and en["variant_id"] == vid
    # An English-speaking customer now gets the approved translation.
    customer = await identify(client, a.id, key_a, first_name="Ann", language="en-GB")
    r = await client.post(f"{base}/preview", headers=auth(key_a),
                          json={"customer_id": customer, "event": {"line": "T2"}})
    assert r.status_code == 200, r.text
    assert r.json()["locale"] == "en-GB" and r.json()["source"] == "tenant"
    assert r.json()["subject"] == "Line news"
    assert r.json()["text"] == "Line T2 for Ann\n--\nTest network"
    # A second approved variant supersedes the first.
    r = await client.post(f"{base}/variants", headers=auth(key_a), json=draft)
    vid2 = r.json()["id"]
    await client.post(f"{base}/variants/{vid2}/submit", headers=auth(key_a))
    await client.post(f"{base}/variants/{vid2}/approve", headers=auth(key_a), json={})
    listed = (await client.get(f"{base}/variants", headers=auth(key_a))).json()["items"]
    assert {v["id"]: v["status"] for v in listed} == {vid: "superseded", vid2: "approved"}


async def test_rejection_and_submission_check_the_data_dictionary(client, db, pair):
    (a, key_a), _ = pair
    template_id = await hq_template(db, pilots=[a.id])
    base = f"/v1/tenants/{a.id}/templates/{template_id}"
    bad = {"locale": "fr-FR", "content": {"subject": "s", "text": "{{ customer.shoe_size }}"}}
    r = await client.post(f"{base}/variants", headers=auth(key_a), json=bad)
    assert r.status_code == 201
    assert [p["code"] for p in r.json()["problems"]] == ["unknown_variable"]
    r = await client.post(f"{base}/variants/{r.json()['id']}/submit", headers=auth(key_a))
    assert r.status_code == 422 and r.json()["field"] == "content.text", r.text
    r = await client.get(f"{base}/variants", headers=auth(key_a))
    vid = r.json()["items"][0]["id"]
    await client.patch(f"{base}/variants/{vid}", headers=auth(key_a),
                       json={"content": {"subject": "s", "text": "{{ customer.first_name }}"}})
    assert (await client.post(f"{base}/variants/{vid}/submit", headers=auth(key_a))
            ).status_code == 200
    r = await client.post(f"{base}/variants/{vid}/reject", headers=auth(key_a),
                          json={"comment": "tone"})
    assert r.json()["status"] == "rejected" and r.json()["comment"] == "tone"
    # The locale is free again for a new draft.
    r = await client.post(f"{base}/variants", headers=auth(key_a), json=bad)
    assert r.status_code == 201


async def test_hq_lock_refuses_local_edits_and_ignores_approved_variants(client, db, hq_key,
                                                                        pair):
    (a, key_a), _ = pair
    template_id = await hq_template(db, pilots=[a.id])
    base = f"/v1/tenants/{a.id}/templates/{template_id}"
    content = {"subject": "Local {{ customer.first_name }}", "text": "local",
               "html": "<p>local</p>"}
    vid = (await client.post(f"{base}/variants", headers=auth(key_a),
                             json={"locale": "fr-FR", "content": content})).json()["id"]
    await client.post(f"{base}/variants/{vid}/submit", headers=auth(key_a))
    await client.post(f"{base}/variants/{vid}/approve", headers=auth(key_a), json={})
    sample = {"customer": {"first_name": "Zoé"}, "event": {"line": "T1"}, "locale": "fr-FR"}
    r = await client.post(f"{base}/preview", headers=auth(key_a), json=sample)
    assert r.json()["subject"] == "Local Zoé"
    r = await client.patch(f"/v1/hq/templates/{template_id}", headers=auth(hq_key),
                           json={"governance": "locked"})
    assert r.status_code == 200
    r = await client.post(f"{base}/preview", headers=auth(key_a), json=sample)
    assert r.json()["subject"] == "Bonjour Zoé" and r.json()["source"] == "hq"
    r = await client.post(f"{base}/variants", headers=auth(key_a),
                          json={"locale": "en-GB", "content": content})
    assert r.status_code == 409 and "locked" in r.json()["detail"]


async def test_preview_errors_on_undefined_variables_and_marks_outdated(client, db, hq_key,
                                                                       pair):
    (a, key_a), _ = pair
    template_id = await hq_template(db, pilots=[a.id])
    base = f"/v1/tenants/{a.id}/templates/{template_id}"
    # No event.line: an error naming the part, never a blank.
    r = await client.post(f"{base}/preview", headers=auth(key_a),
                          json={"customer": {"first_name": "Zoé"}})
    assert r.status_code == 422 and r.json()["field"] in ("subject", "text", "html"), r.text
    assert "line" in r.json()["detail"]
    r = await client.post(f"{base}/preview", headers=auth(key_a),
                          json={"customer_id": "00000000-0000-0000-0000-000000000001"})
    assert r.status_code == 422 and r.json()["field"] == "customer_id"
    r = await client.post(f"{base}/preview", headers=auth(key_a),
                          json={"customer": {}, "locale": "it-IT"})
    assert r.status_code == 422 and r.json()["field"] == "locale"
    # HQ preview with sample data.
    r = await client.post(f"/v1/hq/templates/{template_id}/preview", headers=auth(hq_key),
                          json={"customer": {"first_name": "Zoé"}, "event": {"line": "M1"}})
    assert r.status_code == 200 and r.json()["subject"] == "Bonjour Zoé", r.text
    assert "Sample network" in r.json()["html"]
    # An HQ edit of a locale marks the tenant's variant of it outdated.
    vid = (await client.post(f"{base}/variants", headers=auth(key_a), json={
        "locale": "fr-FR", "content": {"subject": "s", "text": "t"}})).json()["id"]
    r = await client.put(f"/v1/hq/templates/{template_id}/contents/fr-FR", headers=auth(hq_key),
                         json={"subject": "Nouveau", "text": "Nouveau texte"})
    assert r.status_code == 200 and r.json()["revision"] == 2
    r = await client.get(f"{base}/variants/{vid}", headers=auth(key_a))
    assert r.json()["outdated"] is True


async def test_template_settings_are_printed_as_tenant_values(client, db, pair):
    (a, key_a), _ = pair
    template_id = await hq_template(db, pilots=[a.id], channel="sms", purpose="service",
                                    category="service", contents={"fr-FR": {
                                        "text": "Appelez le {{ tenant.support_phone }}"}})
    r = await client.put(f"/v1/tenants/{a.id}/template-settings", headers=auth(key_a),
                         json={"values": {"name": "x"}})
    assert r.status_code == 422 and r.json()["field"] == "values.name"
    r = await client.put(f"/v1/tenants/{a.id}/template-settings", headers=auth(key_a),
                         json={"values": {"support_phone": "3434"}})
    assert r.status_code == 200
    r = await client.post(f"/v1/tenants/{a.id}/templates/{template_id}/preview",
                          headers=auth(key_a), json={"customer": {}})
    assert r.status_code == 200 and r.json()["text"] == "Appelez le 3434", r.text
