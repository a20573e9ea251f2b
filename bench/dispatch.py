"""Dispatch throughput, end to end: planned messages → claimed, consent- and suppression-
checked, rendered (Liquid, HQ layout, tracked links), sent through the tenant's channel
plugins → recorded `sent`, against a local SMTP sink (email) and a local HTTP sink speaking
the Twilio Messages API (SMS), both in a separate process.

Baseline in the same run: the same senders driven directly (no database, no rendering, same
concurrency), i.e. what the sinks and protocol clients alone allow. Goal: >= 500 messages/s
end to end.

    .venv/bin/python -m bench.dispatch [--messages 5000] [--concurrency 8]

Uses RELAIS_TEST_DATABASE_URL / RELAIS_TEST_REDIS_URL when set, else embedded servers, like
the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid

from redis.asyncio import Redis

from bench.oauth import ROOT
from core.db import Database
from core.messaging.dispatch import Dispatcher, dispatch
from core.messaging.schemas import PlannedMessage
from core.messaging.service import enqueue_planned
from core.plugin_config import service as plugin_config
from core.plugin_config.schemas import HqPluginUpdate, TenantPluginPut
from core.plugin_config.secrets import SecretBox
from core.templates import service as templates
from core.templates.schemas import Content, HqTemplateCreate, PartialPut
from plugins.builtin.channels import OutboundMessage, SmtpEmailSender, TwilioSmsSender
from plugins.manager import load_plugins
from tenants import service as tenants
from tenants.context import HqContext
from tenants.overlay import OverlayUpdate, put_overlay
from tenants.schemas import TenantCreate
from tests.services import create_database, destroy_database, settings_for, start_services

HQ = HqContext()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve_sinks() -> None:
    """Child process: run both sinks, print their addresses, report counts when stdin
    closes."""
    from tests.fakes import FakeProviders, SmtpSink

    with SmtpSink() as smtp, FakeProviders() as http:
        print(json.dumps({"smtp_port": smtp.port, "http_url": http.url,
                          "twilio_sid": http.twilio_sid, "twilio_token": http.twilio_token,
                          "cpu": _cpu()}), flush=True)
        sys.stdin.read()
        print(json.dumps({"emails": len(smtp.messages),
                          "sms": len(http.requests_for("twilio")), "cpu": _cpu()}), flush=True)


async def _start_sinks() -> tuple[asyncio.subprocess.Process, dict]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.dispatch", "--serve-sinks", cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    return child, json.loads(await child.stdout.readline())


async def _stop_sinks(child: asyncio.subprocess.Process) -> dict:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    counts = json.loads(await child.stdout.readline())
    await child.wait()
    return counts


async def _setup(db: Database, settings, sinks: dict, n: int):
    tenant = await tenants.create_tenant(db, HQ, TenantCreate(
        id=f"bench-{uuid.uuid4().hex[:6]}", name="Réseau Bench", country="FR",
        timezone="Europe/Paris", default_locale="fr-FR", locales=["fr-FR"]))
    ctx = tenants.context_for(tenant, HQ.actor)
    await put_overlay(db, ctx, "messaging", OverlayUpdate(
        overrides={"email_per_second": 5000, "sms_per_second": 5000}))
    plugins, box = load_plugins(entry_points=False), SecretBox.from_settings(settings)
    configs = {
        "email": {"host": "127.0.0.1", "port": sinks["smtp_port"], "tls": "none",
                  "from_address": "info@reseau-bench.fr", "local_hostname": "relais.bench"},
        "sms_twilio": {"account_sid": sinks["twilio_sid"], "auth_token": sinks["twilio_token"],
                       "from_number": "+33700000001", "base_url": sinks["http_url"]}}
    for name, config in configs.items():
        await plugin_config.put_hq_plugin(db, HQ, plugins, box, name,
                                          HqPluginUpdate(allowed=True))
        await plugin_config.put_tenant_plugin(db, ctx, plugins, box, name,
                                              TenantPluginPut(enabled=True, config=config))
    await templates.put_partial(db, HQ, "bench-layout", PartialPut(
        source="<html><body>{{ content }}<p>{{ tenant.name }} · <a href=\""
               "{{ message.unsubscribe_url }}\">désabonnement</a></p></body></html>"))
    ids = {}
    for channel, content in (
            ("email", Content(subject="Bonjour {{ customer.first_name }}",
                              text="La ligne {{ event.line }} change d'horaires.",
                              html="<p>Bonjour {{ customer.first_name }}, la ligne "
                                   "{{ event.line }} change. <a href=\"https://reseau-bench.fr/"
                                   "lignes/{{ event.line }}\">Voir</a></p>")),
            ("sms", Content(text="{{ customer.first_name }}, ligne {{ event.line }} : "
                                 "nouveaux horaires."))):
        ids[channel] = f"bench-{channel}-{uuid.uuid4().hex[:6]}"
        await templates.create_template(db, HQ, HqTemplateCreate(
            id=ids[channel], name=f"bench {channel}", channel=channel,  # type: ignore[arg-type]
            default_locale="fr-FR", contents={"fr-FR": content}, category="marketing",
            purpose="marketing", pilot_tenants=[tenant.id],
            html_layout="bench-layout" if channel == "email" else None))
    # Profiles and consents written directly (their ingestion has its own benchmark).
    customers = [uuid.uuid4() for _ in range(n)]
    async with db.tenant_tx(ctx) as conn:
        await conn.execute(
            """insert into customers (tenant_id, id, first_name, email, phone, language)
               select $1, id, 'Client' || i, 'client' || i || '@reseau-bench.fr',
                      '+336' || (10000000 + i), 'fr-FR'
               from unnest($2::uuid[]) with ordinality as u(id, i)""", tenant.id, customers)
        await conn.execute(
            """insert into consents (tenant_id, customer_id, channel, purpose, status,
                                     legal_basis, source)
               select $1, id, ch, 'marketing', 'granted', 'consent', 'bench'
               from unnest($2::uuid[]) as u(id), unnest(array['email', 'sms']) as c(ch)""",
            tenant.id, customers)
    return ctx, plugins, ids, customers


async def _baseline(sinks: dict, n: int, concurrency: int) -> dict[str, float]:
    """The senders alone, same concurrency, same kind of payload."""
    results = {}
    for channel, make in (
            ("email", lambda: SmtpEmailSender.from_config({
                "host": "127.0.0.1", "port": sinks["smtp_port"], "tls": "none",
                "from_address": "info@reseau-bench.fr", "local_hostname": "relais.bench"})),
            ("sms", lambda: TwilioSmsSender.from_config({
                "account_sid": sinks["twilio_sid"], "auth_token": sinks["twilio_token"],
                "from_number": "+33700000001", "base_url": sinks["http_url"]}))):
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def worker(channel: str = channel, make=make,
                         queue: asyncio.Queue[int] = queue) -> None:
            async with make() as sender:
                while not queue.empty():
                    i = queue.get_nowait()
                    await sender.send(OutboundMessage(
                        message_id=f"base-{channel}-{i}", tenant_id="bench", channel=channel,
                        to=f"base{i}@reseau-bench.fr" if channel == "email" else
                        f"+337{10000000 + i}", subject="Bonjour", text="Bonjour Client",
                        html="<p>Bonjour</p>" if channel == "email" else None,
                        category="marketing"))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        results[channel] = n / (time.perf_counter() - started)
    return results


async def worker_process(spec: dict) -> None:
    """Child process: one arq-worker equivalent dispatching both channels of the tenant;
    waits for "go" on stdin, prints when each channel has nothing left."""
    from core.settings import Settings
    from tenants.context import SYSTEM
    from tenants.service import tenant_context

    settings = Settings(**spec["settings"])
    db = await Database.connect(settings)
    redis = Redis.from_url(settings.redis_url)
    d = Dispatcher(db=db, redis=redis, settings=settings, plugins=load_plugins(),
                   concurrency=spec["concurrency"])
    ctx = await tenant_context(db, spec["tenant_id"], SYSTEM)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu_before = _cpu()
    done: dict[str, float] = {}
    sent: dict[str, int] = {}

    async def one(channel: str) -> None:
        report = await dispatch(d, ctx, channel, time_budget=600)
        done[channel], sent[channel] = time.time(), report.sent

    await asyncio.gather(one("email"), one("sms"))
    print(json.dumps({"done": done, "sent": sent, "cpu": _cpu() - cpu_before}), flush=True)
    await redis.aclose()
    await db.close()


async def run(n: int, concurrency: int, workers: int) -> None:
    services = await create_database(start_services())
    settings = settings_for(services)
    db = await Database.connect(settings)
    child: asyncio.subprocess.Process | None
    child, sinks = await _start_sinks()
    procs: list[asyncio.subprocess.Process] = []
    try:
        ctx, _plugins, ids, customers = await _setup(db, settings, sinks, n)
        started = time.perf_counter()
        for channel in ("email", "sms"):
            await enqueue_planned(db, ctx, [PlannedMessage(
                customer_id=c, channel=channel, category="marketing",  # type: ignore[arg-type]
                purpose="marketing", source_type="campaign", source_id="bench", step=channel,
                template_id=ids[channel], data={"line": f"L{i % 40}"})
                for i, c in enumerate(customers)])
        planning = time.perf_counter() - started
        spec = {"settings": {"database_url": settings.database_url,
                             "redis_url": settings.redis_url,
                             "redis_prefix": settings.redis_prefix,
                             "secret_key": settings.secret_key},
                "tenant_id": ctx.tenant_id, "concurrency": concurrency}
        for _ in range(workers):
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.dispatch", "--worker", json.dumps(spec), cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))
        for proc in procs:
            assert proc.stdout is not None
            assert (await proc.stdout.readline()).strip() == b"ready"
        go = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        reports = []
        for proc in procs:
            assert proc.stdout is not None
            reports.append(json.loads(await proc.stdout.readline()))
            await proc.wait()
        counts = await _stop_sinks(child)
        child = None
        sink_cpu = counts["cpu"] - sinks["cpu"]
        # The baseline gets fresh sinks, so neither run pays for the other's recordings.
        child, sinks = await _start_sinks()
        baseline = await _baseline(sinks, min(n, 2000), concurrency)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
        if child is not None:
            await _stop_sinks(child)
        await db.close()
        await destroy_database(services)
    assert counts["emails"] >= n and counts["sms"] >= n, counts
    print(f"planned {2 * n} messages in {planning:.2f}s ({2 * n / planning:,.0f}/s, bulk insert)")
    print(f"{workers} worker process(es), {concurrency} concurrent sends per channel each")
    worker_cpu = sum(r["cpu"] for r in reports)
    print(f"CPU per message: workers {worker_cpu / (2 * n) * 1000:.2f} ms, "
          f"sinks {sink_cpu / (2 * n) * 1000:.2f} ms (postgres and redis not counted)")
    finished = {}
    for channel in ("email", "sms"):
        sent = sum(r["sent"][channel] for r in reports)
        assert sent == n, (channel, sent)
        finished[channel] = max(r["done"][channel] for r in reports) - go
        rate = n / finished[channel]
        print(f"{channel:5}: {n} sent in {finished[channel]:.2f}s = {rate:,.0f} msg/s end to "
              f"end; senders alone {baseline[channel]:,.0f} msg/s")
    total = max(finished.values())
    overall = 2 * n / total
    print(f"all  : {2 * n} sent in {total:.2f}s = {overall:,.0f} msg/s "
          f"(goal >= 500: {'OK' if overall >= 500 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="per channel")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--serve-sinks", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sinks:
        serve_sinks()
    elif args.worker:
        asyncio.run(worker_process(json.loads(args.worker)))
    else:
        asyncio.run(run(args.messages, args.concurrency, args.workers))


if __name__ == "__main__":
    main()
