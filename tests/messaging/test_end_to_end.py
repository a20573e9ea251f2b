"""The issue's "done when": a tenant enables email + SMS, translates and approves an HQ
template, sends a transactional message and sees it delivered, opened, clicked and
unsubscribed in its contact history; the unsubscribe withdraws the consent."""

from __future__ import annotations

from core.jobs.worker import build_worker
from tests.conftest import auth
from tests.messaging.conftest import links, path_of
from tests.templates.factories import hq_template


async def test_enable_translate_send_and_follow_the_message(env, sink, fake, db, settings):
    await env.enable_email(sink)
    await env.enable("sms_twilio", {"account_sid": fake.twilio_sid,
                                    "auth_token": fake.twilio_token,
                                    "from_number": "+33700000001", "base_url": fake.url})
    template_id = await hq_template(db, pilots=[env.tenant.id], category="alert",
                                    purpose="traffic_info", contents={"fr-FR": {
                                        "subject": "Info trafic {{ event.line }}",
                                        "text": "Ligne {{ event.line }} perturbée",
                                        "html": "<p>Ligne {{ event.line }}</p>"}})
    base = f"{env.base}/templates/{template_id}"
    variant = (await env.client.post(f"{base}/variants", headers=env.headers, json={
        "locale": "en-GB", "content": {
            "subject": "Traffic news {{ event.line }}",
            "text": "Hello {{ customer.first_name }}, line {{ event.line }} is disrupted.",
            "html": "<p>Hello {{ customer.first_name }}, line {{ event.line }} is disrupted."
                    " <a href=\"https://reseau-lyon.fr/lines/{{ event.line }}\">Line page</a>"
                    "</p>"}})).json()
    await env.client.post(f"{base}/variants/{variant['id']}/submit", headers=env.headers)
    r = await env.client.post(f"{base}/variants/{variant['id']}/approve", headers=env.headers,
                              json={})
    assert r.json()["status"] == "approved"

    customer = await env.customer(first_name="Ann", language="en-GB",
                                  email="ann.smith@reseau-lyon.fr",
                                  consents=(("email", "traffic_info"),))
    sent = await env.send(template_id, customer, data={"line": "T4"})
    assert sent["status"] == "planned" and sent["channel"] == "email"

    report = await env.dispatch("email")
    assert report.sent == 1, report
    mail = sink.messages[0]
    assert mail.rcpt_tos == ["ann.smith@reseau-lyon.fr"]
    mime = mail.message
    assert mime["Subject"] == "Traffic news T4"
    assert mime["X-Relais-Message-Id"] == sent["id"]
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = mime["List-Unsubscribe"].strip("<>")
    assert unsubscribe_url.startswith("https://relais.test/t/u/")
    assert mime.get_content_type() == "multipart/alternative"
    text = mime.get_body(("plain",)).get_content()
    html = mime.get_body(("html",)).get_content()
    assert "Hello Ann, line T4 is disrupted." in text
    assert "Test network" in text  # the HQ text layout
    clicks, opens = links(html, "c"), links(html, "o")
    assert len(clicks) == 1 and len(opens) == 1  # the unsubscribe link is not click-tracked
    assert unsubscribe_url.replace("&", "&amp;") in html or unsubscribe_url in html
    assert "https://reseau-lyon.fr/lines/T4" not in html

    callbacks = (await env.client.get(f"{env.base}/message-callbacks",
                                      headers=env.headers)).json()["urls"]
    assert set(callbacks) == {"email", "sms_twilio"}
    r = await env.client.post(path_of(callbacks["email"]),
                              json={"events": [{"message_id": sent["id"],
                                                "status": "delivered"}]})
    assert r.status_code == 200 and r.json() == {"updated": 1}
    r = await env.client.get(path_of(opens[0]))
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    r = await env.client.get(path_of(clicks[0]))
    assert r.status_code == 302 and r.headers["location"] == "https://reseau-lyon.fr/lines/T4"
    page = await env.client.get(path_of(unsubscribe_url))
    assert page.status_code == 200 and "<form" in page.text
    assert (await env.message(sent["id"]))["status"] == "clicked"  # a GET never unsubscribes
    r = await env.client.post(path_of(unsubscribe_url), content=b"List-Unsubscribe=One-Click",
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text

    message = await env.message(sent["id"])
    assert [e["status"] for e in message["events"]] == [
        "planned", "sent", "delivered", "opened", "clicked", "unsubscribed"]
    assert message["status"] == "unsubscribed" and message["provider"] == "email"
    assert message["locale"] == "en-GB" and message["to_address"] == "ann.smith@reseau-lyon.fr"
    consents = (await env.client.get(f"{env.base}/customers/{customer}/consents",
                                     headers=env.headers)).json()
    state = {(c["channel"], c["purpose"]): c for c in consents}
    assert state[("email", "traffic_info")]["status"] == "withdrawn"
    assert state[("email", "traffic_info")]["source"] == "unsubscribe_link"
    timeline = await env.client.get(f"{env.base}/customers/{customer}/timeline",
                                    headers=env.headers)
    assert timeline.status_code == 200, timeline.text
    item = next(i for i in timeline.json()["items"] if i["kind"] == "message")
    assert item["ref"] == sent["id"] and item["data"]["status"] == "unsubscribed"
    assert [h["status"] for h in item["data"]["history"]] == [
        "planned", "sent", "delivered", "opened", "clicked", "unsubscribed"]

    # The next alert on that channel and purpose is not sent: consent was withdrawn.
    again = await env.send(template_id, customer, data={"line": "T5"})
    assert again["status"] == "skipped" and again["status_reason"] == "no_consent"


async def test_transactional_api_is_idempotent_and_runs_through_the_worker(env, sink, db,
                                                                           settings):
    await env.enable_email(sink)
    template_id = await hq_template(db, pilots=[env.tenant.id], category="transactional",
                                    purpose="transactional")
    customer = await env.customer(first_name="Zoé")  # no consent: transactional needs none
    body = {"idempotency_key": "order-42", "customer_id": customer,
            "template_id": template_id, "data": {"line": "A"}}
    first = await env.client.post(f"{env.base}/messages", headers=env.headers, json=body)
    assert first.status_code == 202, first.text
    replay = await env.client.post(f"{env.base}/messages", headers=env.headers, json=body)
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    other = await env.client.post(f"{env.base}/messages", headers=env.headers,
                                  json=body | {"data": {"line": "B"}})
    assert other.status_code == 409 and other.json()["field"] == "idempotency_key"

    worker = build_worker(settings, burst=True, poll_delay=0.05)
    try:
        await worker.main()
    finally:
        await worker.close()
    message = await env.message(first.json()["id"])
    assert message["status"] == "sent", message
    assert len(sink.messages) == 1
    mime = sink.messages[0].message
    assert mime["Subject"] == "Bonjour Zoé"
    assert mime["List-Unsubscribe"] is None  # nothing to unsubscribe from
    # Another tenant's key does not see the message.
    assert (await env.client.get(f"{env.base}/messages/{message['id']}",
                                 headers=auth(env.hq_key))).status_code == 200


async def test_transactional_api_rejects_bad_requests_by_field(env, sink, db):
    await env.enable_email(sink)
    template_id = await hq_template(db, pilots=[env.tenant.id])
    marketing = await hq_template(db, pilots=[env.tenant.id], category="marketing",
                                  purpose="marketing")
    sms = await hq_template(db, pilots=[env.tenant.id], channel="sms", category="alert")
    customer = await env.customer(first_name="Zoé", consents=(("email", "traffic_info"),))
    cases = [
        ({"template_id": "nope"}, "template_id"),
        ({"template_id": marketing}, "template_id"),
        ({"template_id": sms}, "template_id"),  # sms not enabled for this tenant
        ({"customer_id": "00000000-0000-0000-0000-000000000009"}, "customer_id"),
        ({"locale": "it-IT"}, "locale"),
        ({"to": "not an email"}, "to"),
        ({"data": {}}, "data"),  # event.line is undefined: refused before planning
    ]
    for extra, field in cases:
        body = {"idempotency_key": f"bad-{field}", "customer_id": customer,
                "template_id": template_id, "data": {"line": "T1"}} | extra
        r = await env.client.post(f"{env.base}/messages", headers=env.headers, json=body)
        assert r.status_code == 422, (extra, r.text)
        assert r.json()["field"] == field, (extra, r.json())
    r = await env.client.post(f"{env.base}/messages", headers=env.headers,
                              json={"customer_id": customer})
    assert r.status_code == 400
