"""Each channel against its local fake provider: request formats, status callbacks, and the
mapping of provider errors to permanent failures (with suppression) or retries."""

from __future__ import annotations

import asyncio

from tests.fakes import fcm_error, graph_error, http_status, twilio_error
from tests.messaging.conftest import path_of
from tests.templates.factories import hq_template


async def make_due(env) -> None:
    """Skip the retry backoff."""
    async with env.db.tenant_tx(env.ctx) as conn:
        await conn.execute("update messages set scheduled_at = now() where status = 'planned'")


async def callback_url(env, plugin: str) -> str:
    urls = (await env.client.get(f"{env.base}/message-callbacks", headers=env.headers)).json()
    return path_of(urls["urls"][plugin])


async def twilio_env(env, fake, db):
    await env.enable("sms_twilio", {"account_sid": fake.twilio_sid,
                                    "auth_token": fake.twilio_token,
                                    "from_number": "+33700000001", "base_url": fake.url})
    return await hq_template(db, pilots=[env.tenant.id], channel="sms", category="alert",
                             purpose="traffic_info")


async def test_sms_twilio_sends_with_our_status_callback_and_takes_delivery_reports(
        env, fake, db):
    template_id = await twilio_env(env, fake, db)
    customer = await env.customer(first_name="Léa", phone="06 12 48 57 93",
                                  consents=(("sms", "traffic_info"),))
    sent = await env.send(template_id, customer, data={"line": "B12"})
    report = await env.dispatch("sms")
    assert report.sent == 1, report
    (request,) = fake.requests_for("twilio")
    form = request.form()
    assert form["To"] == "+33612485793" and form["From"] == "+33700000001"
    assert form["Body"] == "Ligne B12 : Léa"
    assert form["StatusCallback"] == f"https://relais.test{await callback_url(env, 'sms_twilio')}"
    message = await env.message(sent["id"])
    assert message["status"] == "sent" and message["provider_message_id"].startswith("SM")
    r = await env.client.post(await callback_url(env, "sms_twilio"), data={
        "MessageSid": message["provider_message_id"], "MessageStatus": "delivered"})
    assert r.status_code == 200 and r.json() == {"updated": 1}
    assert (await env.message(sent["id"]))["status"] == "delivered"
    # A forged callback URL is an unknown page.
    forged = (await callback_url(env, "sms_twilio"))[:-3] + "AAA"
    r = await env.client.post(forged, data={"MessageSid": "x", "MessageStatus": "delivered"})
    assert r.status_code == 404


async def test_sms_permanent_error_fails_and_suppresses_the_number(env, fake, db):
    template_id = await twilio_env(env, fake, db)
    customer = await env.customer(first_name="Léa", phone="+33612485790",
                                  consents=(("sms", "traffic_info"),))
    fake.program("+33612485790", twilio_error(21614, message="not a mobile number"))
    sent = await env.send(template_id, customer)
    report = await env.dispatch("sms")
    assert report.failed == 1 and report.sent == 0
    message = await env.message(sent["id"])
    assert message["status"] == "failed" and message["error_code"] == "invalid_recipient"
    # The number is now on the suppression list: the next message is not even tried.
    again = await env.send(template_id, customer)
    assert again["status"] == "skipped" and again["status_reason"] == "suppressed"
    assert len(fake.requests_for("twilio")) == 1


async def test_sms_transient_error_retries_with_backoff_then_sends(env, fake, db):
    template_id = await twilio_env(env, fake, db)
    customer = await env.customer(first_name="Léa", phone="+33612485791",
                                  consents=(("sms", "traffic_info"),))
    fake.program("+33612485791", http_status(503, {"code": 20503}, retry_after=120, times=1))
    sent = await env.send(template_id, customer)
    report = await env.dispatch("sms")
    assert report.retrying == 1
    message = await env.message(sent["id"])
    assert message["status"] == "planned" and message["attempts"] == 1
    assert [e["status"] for e in message["events"]] == ["planned", "retrying"]
    # Not due before the provider's Retry-After.
    assert (await env.dispatch("sms")).claimed == 0
    await make_due(env)
    report = await env.dispatch("sms")
    assert report.sent == 1
    message = await env.message(sent["id"])
    assert message["status"] == "sent" and message["attempts"] == 2


async def test_sms_retries_stop_at_the_tenant_max_attempts(env, fake, db):
    template_id = await twilio_env(env, fake, db)
    await env.policy(max_attempts=2)
    customer = await env.customer(first_name="Léa", phone="+33612485792",
                                  consents=(("sms", "traffic_info"),))
    fake.program("+33612485792", http_status(500))
    sent = await env.send(template_id, customer)
    await env.dispatch("sms")
    await make_due(env)
    await env.dispatch("sms")
    message = await env.message(sent["id"])
    assert message["status"] == "failed" and message["error_code"] == "provider_unavailable"
    assert message["attempts"] == 2


async def test_sms_http_gateway(env, fake, db):
    await env.enable("sms_http", {"url": fake.gateway_url, "id_path": "data.id",
                                  "headers": {"Authorization": f"Bearer {fake.gateway_token}"}})
    template_id = await hq_template(db, pilots=[env.tenant.id], channel="sms",
                                    category="transactional", purpose="transactional")
    customer = await env.customer(first_name="Noé", phone="+33612485794")
    sent = await env.send(template_id, customer, data={"line": "C3"})
    assert (await env.dispatch("sms")).sent == 1
    (request,) = fake.requests_for("gateway")
    assert request.json() == {"to": "+33612485794", "text": "Ligne C3 : Noé",
                              "message_id": sent["id"]}
    message = await env.message(sent["id"])
    assert message["provider_message_id"].startswith("gw-")
    # Gateways report in the generic format, by their own id.
    r = await env.client.post(await callback_url(env, "sms_http"), json={
        "provider_message_id": message["provider_message_id"], "status": "delivered"})
    assert r.json() == {"updated": 1}
    assert (await env.message(sent["id"]))["status"] == "delivered"


async def test_whatsapp_template_message_and_read_receipts(env, fake, db):
    await env.enable("whatsapp_cloud", {"phone_number_id": fake.whatsapp_phone_number_id,
                                        "access_token": fake.whatsapp_token,
                                        "base_url": fake.url})
    template_id = await hq_template(
        db, pilots=[env.tenant.id], channel="whatsapp", category="service", purpose="service",
        contents={"fr-FR": {"text": "Votre abonnement {{ event.plan }} est renouvelé",
                            "provider_template": "subscription_renewed",
                            "params": ["{{ customer.first_name }}", "{{ event.plan }}"]}})
    customer = await env.customer(first_name="Sami", phone="+212612345670",
                                  consents=(("whatsapp", "service"),))
    sent = await env.send(template_id, customer, data={"plan": "Annuel"})
    assert (await env.dispatch("whatsapp")).sent == 1
    (request,) = fake.requests_for("whatsapp")
    payload = request.json()
    assert payload["type"] == "template" and payload["to"] == "+212612345670"
    assert payload["template"]["name"] == "subscription_renewed"
    assert payload["template"]["language"] == {"code": "fr_FR"}
    assert [p["text"] for p in payload["template"]["components"][0]["parameters"]] == [
        "Sami", "Annuel"]
    assert payload["biz_opaque_callback_data"] == sent["id"]
    message = await env.message(sent["id"])
    webhook = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "statuses": [
            {"id": message["provider_message_id"], "status": "delivered",
             "timestamp": "1767225600", "recipient_id": "212612345670"},
            {"id": message["provider_message_id"], "status": "read",
             "timestamp": "1767225660", "recipient_id": "212612345670"}]}}]}]}
    url = await callback_url(env, "whatsapp_cloud")
    r = await env.client.post(url, json=webhook)
    assert r.json() == {"updated": 2}
    message = await env.message(sent["id"])
    assert message["status"] == "opened" and message["delivered_at"].startswith("2026-01-01")
    # Meta's set-up handshake is answered on the same signed URL.
    r = await env.client.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "x",
                                          "hub.challenge": "8421"})
    assert r.status_code == 200 and r.text == "8421"


async def test_whatsapp_undeliverable_is_a_hard_bounce(env, fake, db):
    await env.enable("whatsapp_cloud", {"phone_number_id": fake.whatsapp_phone_number_id,
                                        "access_token": fake.whatsapp_token,
                                        "base_url": fake.url})
    template_id = await hq_template(
        db, pilots=[env.tenant.id], channel="whatsapp", category="transactional",
        purpose="transactional", contents={"fr-FR": {"text": "x", "provider_template": "t"}})
    customer = await env.customer(phone="+212612345671")
    sent = await env.send(template_id, customer)
    await env.dispatch("whatsapp")
    message = await env.message(sent["id"])
    r = await env.client.post(await callback_url(env, "whatsapp_cloud"), json={"entry": [{
        "changes": [{"value": {"statuses": [{
            "id": message["provider_message_id"], "status": "failed", "timestamp": "1767225600",
            "errors": [{"code": 131026, "title": "Message undeliverable"}]}]}}]}]})
    assert r.json() == {"updated": 1}
    message = await env.message(sent["id"])
    assert message["status"] == "bounced" and message["error_code"] == "131026"
    again = await env.send(template_id, customer)
    assert again["status"] == "skipped" and again["status_reason"] == "suppressed"
    # A send-time error of the same kind is permanent too.
    other = await env.customer(phone="+212612345672")
    fake.program("+212612345672", graph_error(131026, 400, "undeliverable"))
    failed = await env.send(template_id, other)
    await env.dispatch("whatsapp")
    assert (await env.message(failed["id"]))["error_code"] == "invalid_recipient"


async def test_push_fcm_uses_the_profile_token(env, fake, db):
    await env.enable("push_fcm", {"project_id": fake.fcm_project,
                                  "access_token": fake.fcm_token, "base_url": fake.url})
    template_id = await hq_template(
        db, pilots=[env.tenant.id], channel="push", category="alert", purpose="traffic_info",
        contents={"fr-FR": {"subject": "Trafic", "text": "Ligne {{ event.line }} coupée"}})
    ok = await env.customer(push_token="tok-ok-1", consents=(("push", "traffic_info"),))
    gone = await env.customer(push_token="tok-gone-1", consents=(("push", "traffic_info"),))
    none = await env.customer(consents=(("push", "traffic_info"),))
    fake.program("tok-gone-1", fcm_error("UNREGISTERED"))
    sent = [await env.send(template_id, c, data={"line": "M2"}) for c in (ok, gone, none)]
    assert sent[2]["status"] == "skipped"  # no token: decided at once, never claimed
    report = await env.dispatch("push")
    assert (report.sent, report.failed) == (1, 1), report
    ok_request = next(r for r in fake.requests_for("fcm")
                      if r.json()["message"]["token"] == "tok-ok-1")
    message = ok_request.json()["message"]
    assert message["notification"] == {"title": "Trafic", "body": "Ligne M2 coupée"}
    assert message["data"] == {"message_id": sent[0]["id"]}
    states = [(await env.message(s["id"])) for s in sent]
    assert [s["status"] for s in states] == ["sent", "failed", "skipped"]
    assert states[1]["error_code"] == "invalid_recipient"
    assert states[2]["status_reason"] == "no_address"


async def test_webhook_is_signed_and_retried_after_a_receiver_error(env, fake, db):
    await env.enable("webhook", {"url": fake.webhook_url("crm"),
                                 "secret": fake.webhook_secret})
    template_id = await hq_template(
        db, pilots=[env.tenant.id], channel="webhook", category="service", purpose="service",
        contents={"fr-FR": {"subject": "Réclamation", "text": "Ticket {{ event.ticket }}"}})
    customer = await env.customer(consents=(("webhook", "service"),))
    fake.program("crm", http_status(500, times=1))
    sent = await env.send(template_id, customer, data={"ticket": "T-9"})
    assert (await env.dispatch("webhook")).retrying == 1
    await make_due(env)
    assert (await env.dispatch("webhook")).sent == 1
    first, second = fake.requests_for("webhook")
    assert first.body == second.body  # the same message, the same id, for dedup
    assert second.headers["x-relais-message-id"] == sent["id"]
    body = second.json()
    assert body["text"] == "Ticket T-9" and body["data"]["customer_id"] == customer


async def test_a_tenant_level_error_halts_the_batch_without_burning_messages(env, fake, db):
    await env.enable("sms_twilio", {"account_sid": fake.twilio_sid, "auth_token": "wrong",
                                    "from_number": "+33700000001", "base_url": fake.url})
    template_id = await hq_template(db, pilots=[env.tenant.id], channel="sms",
                                    category="transactional", purpose="transactional")
    customers = [await env.customer(first_name="A", phone=f"+3361248580{i}") for i in range(6)]
    sent = await asyncio.gather(*(env.send(template_id, c) for c in customers))
    env.dispatcher.concurrency = 1
    report = await env.dispatch("sms")
    assert report.retrying == 1 and report.released == 5, report
    assert len(fake.requests_for("twilio")) == 1
    states = [await env.message(s["id"]) for s in sent]
    assert sorted(s["attempts"] for s in states) == [0, 0, 0, 0, 0, 1]
    assert all(s["status"] == "planned" for s in states)
