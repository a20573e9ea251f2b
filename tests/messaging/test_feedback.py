"""Bounces (DSN), complaints (ARF), signed links, consent gating, bulk planning, rates,
isolation, and the plugin hook on status changes."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from core.messaging.dispatch import Dispatcher, dispatch
from core.messaging.schemas import PlannedMessage
from core.messaging.service import enqueue_planned
from core.messaging.tracking import Signer
from core.plugin_config import service as plugin_config
from core.plugin_config.schemas import HqPluginUpdate, TenantPluginPut
from core.plugin_config.secrets import SecretBox
from plugins import EligibilityVerdict, RuleType, hookimpl
from plugins.manager import load_plugins
from tenants.context import HqContext
from tests.conftest import auth
from tests.messaging.conftest import links, path_of
from tests.templates.factories import hq_template


def dsn(original_id: str, recipient: str, status: str = "5.1.1") -> bytes:
    return (
        "From: MAILER-DAEMON@relay.reseau-lyon.fr\r\n"
        "To: info@reseau-lyon.fr\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.reseau-lyon.fr\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{original_id}@reseau-lyon.fr>\r\nSubject: Info\r\n\r\n"
        "--B--\r\n").encode()


def arf(original_id: str) -> bytes:
    return (
        "From: feedback@isp.example.net\r\nTo: fbl@reseau-lyon.fr\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n\r\n"
        "--F\r\nContent-Type: message/rfc822\r\n\r\n"
        f"X-Relais-Message-Id: {original_id}\r\nSubject: Info\r\n\r\nbody\r\n"
        "--F--\r\n").encode()


async def email_env(env, sink, db, **template):
    await env.enable_email(sink)
    return await hq_template(db, pilots=[env.tenant.id], **template)


async def status_url(env) -> str:
    urls = (await env.client.get(f"{env.base}/message-callbacks", headers=env.headers)).json()
    return path_of(urls["urls"]["email"])


async def test_dsn_hard_bounce_and_arf_complaint_suppress_the_address(env, sink, db):
    template_id = await email_env(env, sink, db)
    bounced = await env.customer(first_name="B", email="gone@reseau-lyon.fr",
                                 consents=(("email", "traffic_info"),))
    annoyed = await env.customer(first_name="C", email="annoyed@reseau-lyon.fr",
                                 consents=(("email", "traffic_info"),))
    first = await env.send(template_id, bounced)
    second = await env.send(template_id, annoyed)
    assert (await env.dispatch("email")).sent == 2
    url = await status_url(env)
    r = await env.client.post(url, content=dsn(first["id"], "gone@reseau-lyon.fr"),
                              headers={"content-type": "message/rfc822"})
    assert r.status_code == 200 and r.json() == {"updated": 1}, r.text
    r = await env.client.post(url, content=arf(second["id"]),
                              headers={"content-type": "message/rfc822"})
    assert r.json() == {"updated": 1}
    one, two = await env.message(first["id"]), await env.message(second["id"])
    assert one["status"] == "bounced" and one["error_code"] == "5.1.1"
    assert two["status"] == "complained"
    # Both addresses are suppressed now, whatever the consent says.
    for customer in (bounced, annoyed):
        again = await env.send(template_id, customer)
        assert again["status"] == "skipped" and again["status_reason"] == "suppressed"
    # A soft bounce (4.x.x) is a failure, not a suppression.
    other = await env.customer(first_name="D", consents=(("email", "traffic_info"),))
    third = await env.send(template_id, other)
    await env.dispatch("email")
    r = await env.client.post(url, content=dsn(third["id"], "x@reseau-lyon.fr", "4.2.2"),
                              headers={"content-type": "message/rfc822"})
    assert (await env.message(third["id"]))["status"] == "failed"
    assert (await env.send(template_id, other))["status"] == "planned"
    # Garbage is a 422 naming the body, not a 500.
    r = await env.client.post(url, content=b"not a report",
                              headers={"content-type": "message/rfc822"})
    assert r.status_code == 422 and r.json()["field"] == "body"


async def test_links_are_signed_and_never_redirect_elsewhere(env, sink, db, settings):
    template_id = await email_env(env, sink, db)
    customer = await env.customer(first_name="Zoé", consents=(("email", "traffic_info"),))
    sent = await env.send(template_id, customer)
    await env.dispatch("email")
    html = sink.messages[0].message.get_body(("html",)).get_content()
    (click,) = links(html, "c")
    r = await env.client.get(path_of(click))
    assert r.status_code == 302
    assert r.headers["location"] == "https://reseau.example/info?l=T1&x=1"
    # Tampering with the payload (another URL) breaks the signature.
    signer = Signer("another-secret", "https://relais.test")
    forged = signer.click_url(env.tenant.id, sent["id"], "https://evil.example/")
    assert (await env.client.get(path_of(forged))).status_code == 404
    payload, mac = path_of(click).rsplit("/", 1)[1].split(".")
    assert (await env.client.get(f"/t/c/{payload}x.{mac}")).status_code == 404
    # An open token is not a click token.
    (pixel,) = links(html, "o")
    assert (await env.client.get(path_of(pixel).replace("/t/o/", "/t/c/"))).status_code == 404
    # Repeated opens are recorded once; every click is recorded.
    await env.client.get(path_of(pixel))
    await env.client.get(path_of(pixel))
    await env.client.get(path_of(click))
    statuses = [e["status"] for e in (await env.message(sent["id"]))["events"]]
    assert statuses.count("opened") == 1 and statuses.count("clicked") == 2


async def test_marketing_needs_consent_and_transactional_does_not(env, sink, db):
    await env.enable_email(sink)
    marketing = await hq_template(db, pilots=[env.tenant.id], category="marketing",
                                  purpose="marketing")
    customer = await env.customer(first_name="Zoé", consents=(("email", "traffic_info"),))
    other = await env.customer(first_name="Léo", consents=(("email", "marketing"),))
    planned = await enqueue_planned(env.db, env.ctx, [PlannedMessage(
        customer_id=uuid.UUID(c), channel="email", category="marketing", purpose="marketing",
        source_type="campaign", source_id="spring", step="e1", template_id=marketing,
        data={"line": "T1"}) for c in (customer, other)])
    report = await env.dispatch("email")
    assert (report.sent, report.skipped) == (1, 1)
    skipped = await env.message(planned.ids[0])
    assert skipped["status"] == "skipped" and skipped["status_reason"] == "no_consent"
    assert sink.messages[0].message["List-Unsubscribe"] is not None


async def test_bulk_planning_is_idempotent_on_the_deterministic_id(env, db):
    customers = [uuid.uuid4() for _ in range(3)]

    def plan(occurrence: str) -> list[PlannedMessage]:
        return [PlannedMessage(customer_id=c, channel="sms", category="marketing",
                               purpose="marketing", source_type="journey", source_id="welcome",
                               step="day-1", occurrence=occurrence, template_id="x",
                               tags=("welcome", "j1")) for c in customers]

    first = await enqueue_planned(env.db, env.ctx, plan("2026-11"))
    again = await enqueue_planned(env.db, env.ctx, plan("2026-11"))
    later = await enqueue_planned(env.db, env.ctx, plan("2026-12"))
    assert len(first.inserted) == 3 and again.inserted == [] and again.ids == first.ids
    assert len(later.inserted) == 3 and not set(later.ids) & set(first.ids)
    message = await env.message(first.ids[0])
    assert message["tags"] == ["welcome", "j1"] and message["events"][0]["status"] == "planned"
    listed = await env.client.get(f"{env.base}/messages?source_id=welcome&limit=4",
                                  headers=env.headers)
    assert len(listed.json()["items"]) == 4 and listed.json()["next_cursor"]
    rest = await env.client.get(f"{env.base}/messages?source_id=welcome&limit=4&cursor="
                                f"{listed.json()['next_cursor']}", headers=env.headers)
    assert len(rest.json()["items"]) == 2


async def test_send_rate_is_capped_per_tenant_and_channel(env, sink, db):
    template_id = await email_env(env, sink, db, category="transactional",
                                  purpose="transactional")
    await env.policy(email_per_second=5)
    r = await env.client.put(f"{env.base}/messaging-policy/overlay", headers=env.headers,
                             json={"overrides": {"email_per_second": 100000}})
    assert r.status_code == 422  # HQ bounds the rate
    customer = uuid.UUID(await env.customer(first_name="R"))
    await enqueue_planned(env.db, env.ctx, [PlannedMessage(
        customer_id=customer, channel="email", category="transactional",
        purpose="transactional", source_type="journey", source_id="rate", occurrence=str(i),
        template_id=template_id, data={"line": "T1"}) for i in range(60)])
    started = time.time()
    report = await env.dispatch("email", time_budget=1.2)
    windows = int(time.time()) - int(started) + 1  # one-second windows the run touched
    assert report.sent <= 5 * windows and report.sent < 60 and report.more
    assert len(sink.messages) == report.sent


async def test_messages_and_links_stay_in_their_tenant(env, sink, db, make_tenant, make_key):
    template_id = await email_env(env, sink, db)
    customer = await env.customer(first_name="Zoé", consents=(("email", "traffic_info"),))
    sent = await env.send(template_id, customer)
    await env.dispatch("email")
    other = await make_tenant("msg-b")
    other_key = await make_key(other.id)
    r = await env.client.get(f"/v1/tenants/{other.id}/messages/{sent['id']}",
                             headers=auth(other_key))
    assert r.status_code == 404
    r = await env.client.get(f"/v1/tenants/{other.id}/messages", headers=auth(other_key))
    assert r.json()["items"] == []
    # A validly signed link naming another tenant finds nothing there.
    signer = Signer(env.settings.secret_key, "https://relais.test")
    r = await env.client.get(path_of(signer.open_url(other.id, sent["id"])))
    assert r.status_code == 200  # the pixel always answers, but records nothing
    assert (await env.message(sent["id"]))["opened_at"] is None


class Observer:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def relais_message_status_changed(self, tenant_id, changes):
        self.seen += [(c.message_id, c.status) for c in changes]


async def test_status_changes_reach_plugins(env, sink, db, redis, settings):
    template_id = await email_env(env, sink, db)
    customer = await env.customer(first_name="Zoé", consents=(("email", "traffic_info"),))
    sent = await env.send(template_id, customer)
    observer = Observer()
    manager = load_plugins(entry_points=False, extra=[("observer", observer)])
    d = Dispatcher(db=db, redis=redis, settings=settings, plugins=manager)
    await dispatch(d, env.ctx, "email")
    assert observer.seen == [(sent["id"], "sent")]


async def test_transactional_and_alerts_are_claimed_before_a_campaign_backlog(env, sink, db):
    await env.enable_email(sink)
    marketing = await hq_template(db, pilots=[env.tenant.id], category="marketing",
                                  purpose="marketing")
    transactional = await hq_template(db, pilots=[env.tenant.id], category="transactional",
                                      purpose="transactional")
    customers = [uuid.UUID(await env.customer(first_name="Q", email=f"q{i}@reseau-lyon.fr",
                                              consents=(("email", "marketing"),)))
                 for i in range(5)]

    def planned(c: uuid.UUID, template: str, category: str) -> PlannedMessage:
        return PlannedMessage(customer_id=c, channel="email", category=category,
                              purpose=category, source_type="journey", source_id=template,
                              template_id=template, data={"line": "T1"})

    await enqueue_planned(env.db, env.ctx, [planned(c, marketing, "marketing")
                                            for c in customers[:3]])
    await enqueue_planned(env.db, env.ctx, [planned(c, transactional, "transactional")
                                            for c in customers[3:]])
    env.dispatcher.batch_size, env.dispatcher.concurrency = 3, 1
    report = await env.dispatch("email")
    assert report.claimed == report.sent == 5  # each message claimed once
    order = [m.rcpt_tos[0] for m in sink.messages]
    assert set(order[:2]) == {"q3@reseau-lyon.fr", "q4@reseau-lyon.fr"}
    assert len(set(order)) == 5


class QuietRule:
    """A local rule overlay: vetoes one customer, delays another."""

    def __init__(self) -> None:
        self.veto: set[str] = set()
        self.delay: set[str] = set()

    @hookimpl
    def relais_rule_types(self):
        return [RuleType(name="test_quiet_rule")]

    @hookimpl
    def relais_check_eligibility(self, candidates, rules):
        until = datetime.now(UTC) + timedelta(hours=2)
        return [EligibilityVerdict(message_id=c.message_id, action="veto", reason="red list",
                                   rule="test_quiet_rule")
                for c in candidates if str(c.customer_id) in self.veto] + [
                EligibilityVerdict(message_id=c.message_id, action="delay", until=until,
                                   reason="quiet hours", rule="test_quiet_rule")
                for c in candidates if str(c.customer_id) in self.delay]


async def test_rule_plugins_veto_or_delay_at_dispatch(env, sink, db, redis, settings):
    template_id = await email_env(env, sink, db, category="transactional",
                                  purpose="transactional")
    rule = QuietRule()
    manager = load_plugins(entry_points=False, extra=[("quiet", rule)])
    box = SecretBox.from_settings(settings)
    await plugin_config.put_hq_plugin(db, HqContext(), manager, box, "test_quiet_rule",
                                      HqPluginUpdate(allowed=True))
    await plugin_config.put_tenant_plugin(db, env.ctx, manager, box, "test_quiet_rule",
                                          TenantPluginPut(enabled=True))
    ok, vetoed, delayed = [await env.customer(first_name="R") for _ in range(3)]
    rule.veto.add(vetoed)
    rule.delay.add(delayed)
    sent = [await env.send(template_id, c) for c in (ok, vetoed, delayed)]
    d = Dispatcher(db=db, redis=redis, settings=settings, plugins=manager)
    report = await dispatch(d, env.ctx, "email")
    assert (report.sent, report.skipped, report.delayed) == (1, 1, 1), report
    states = [await env.message(m["id"]) for m in sent]
    assert states[1]["status"] == "skipped"
    assert states[1]["status_reason"] == "rule test_quiet_rule: red list"
    assert states[2]["status"] == "planned" and states[2]["attempts"] == 0
    assert states[2]["events"][-1]["status"] == "delayed"
    later = datetime.fromisoformat(states[2]["scheduled_at"])
    assert later > datetime.now(UTC) + timedelta(hours=1)
