"""Campaign planning with pressure caps and arbitration on one big tenant.

1. generates one tenant with N customers (default 1M: emails, phones, consents, some
   preferences with other time zones and quiet hours, a few suppressed addresses) and M
   historical messages (default 2M: mostly sent over the last 30 days, some planned in the
   campaign's week with various priorities, a share transactional), with COPY (as the
   superuser: COPY is refused under row-level security);
2. a segment of A members (default 500k), a 5% universal holdout group;
3. plans a newsletter to that segment on email then SMS, with the tenant's 3 cap rules
   (the built-in pressure policy: marketing per week, marketing + service per day,
   marketing SMS per month), a 5% control group and an A/B split, batch after batch as
   the worker does (goal: <= 20 s);
4. prints the funnel, then audits the contact history with SQL: any period containing a
   message of the campaign over a cap is a violation (must be 0), and every planned message
   of the campaign must have passed arbitration.

    .venv/bin/python -m bench.campaign [--customers 1000000] [--history 2000000]
                                       [--audience 500000]

Uses RELAIS_TEST_DATABASE_URL / RELAIS_TEST_REDIS_URL when set (a shared server, left as it
is), else embedded servers of its own under .relais/bench (WAL settings for a write-heavy
run, printed). Generating the data takes a few minutes; `--keep` then `--database NAME`
replans on the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from urllib.parse import urlsplit

import asyncpg
import msgspec

from bench.oauth import ROOT
from core import embedded
from core.bootstrap import dsn_for
from core.campaigns import planner, service
from core.campaigns.funnel import funnel
from core.campaigns.schemas import CampaignCreate
from core.db import Database
from core.holdout import service as holdout
from core.holdout.schemas import HoldoutCreate
from core.identity.normalise import hash_identifier
from core.model.service import load_suppression_key
from core.pressure import service as pressure
from core.segments import definition as d
from core.segments.schemas import SegmentCreate
from core.segments.service import create_segment
from tenants import service as tenants
from tenants.context import HqContext
from tenants.schemas import TenantCreate
from tests.campaigns.factories import templates
from tests.services import (
    TestServices,
    create_database,
    destroy_database,
    settings_for,
    start_services,
)

TENANT = "bench-camp"
CHUNK = 200_000
NOW = datetime.now(UTC)
# Next Monday 10:00 Paris (09:00 UTC in winter, 08:00 in summer: outside quiet hours).
SEND_AT = (NOW + timedelta(days=7 - NOW.weekday())).replace(hour=9, minute=0, second=0,
                                                             microsecond=0)
_rng = random.Random(7)


def _customer_rows(ids: list[uuid.UUID]):
    for i, cid in enumerate(ids):
        yield (TENANT, cid, f"c{i}@example.org" if i % 10 else None,
               f"+3361{i:07d}" if i % 3 else None, "fr")


def _consent_rows(ids: list[uuid.UUID]):
    for i, cid in enumerate(ids):
        if i % 7:
            yield (TENANT, cid, "email", "marketing", "granted", "consent", "bench")
        elif i % 2:
            yield (TENANT, cid, "email", "marketing", "withdrawn", "consent", "bench")
        if i % 2:
            yield (TENANT, cid, "sms", "marketing", "granted", "consent", "bench")


def _preference_rows(ids: list[uuid.UUID]):
    for i, cid in enumerate(ids):
        if i % 20 == 1:
            yield (TENANT, cid, ["sms"], "America/New_York", None, None)
        elif i % 20 == 2:
            yield (TENANT, cid, [], "Europe/London", dtime(9), dtime(12))


def _message_rows(ids: list[uuid.UUID], total: int):
    """Mostly sent over the last 30 days; 10% planned around the campaign's week."""
    categories = ["marketing"] * 6 + ["service"] * 2 + ["alert", "transactional"]
    for n in range(total):
        cid = ids[_rng.randrange(len(ids))]
        category = _rng.choice(categories)
        channel = "email" if _rng.random() < 0.7 else "sms"
        roll = _rng.random()
        if roll < 0.85:
            at = NOW - timedelta(seconds=_rng.uniform(0, 30 * 86400))
            status, sent = "sent", at
        elif roll < 0.95:
            at = SEND_AT + timedelta(seconds=_rng.uniform(-3 * 86400, 3 * 86400))
            status, sent = "planned", None
        else:
            at = NOW - timedelta(seconds=_rng.uniform(0, 30 * 86400))
            status, sent = _rng.choice(["failed", "skipped"]), None
        yield (TENANT, f"bench{n}", cid, channel, category,
               "transactional" if category == "transactional" else "marketing",
               _rng.randrange(0, 101), "journey", f"j{n % 50}", status, at, sent, [])


async def _copy(conn: asyncpg.Connection, table: str, columns: list[str], rows) -> int:
    total, chunk = 0, []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            await conn.copy_records_to_table(table, records=chunk, columns=columns)
            total, chunk = total + len(chunk), []
    if chunk:
        await conn.copy_records_to_table(table, records=chunk, columns=columns)
        total += len(chunk)
    return total


async def generate(superuser_dsn: str, ids: list[uuid.UUID], history: int, audience: int,
                   segment_id: str, key: bytes) -> None:
    conn = await asyncpg.connect(superuser_dsn)
    try:
        started = time.perf_counter()
        await _copy(conn, "customers", ["tenant_id", "id", "email", "phone", "language"],
                    _customer_rows(ids))
        await _copy(conn, "consents", ["tenant_id", "customer_id", "channel", "purpose",
                                       "status", "legal_basis", "source"], _consent_rows(ids))
        await _copy(conn, "preferences", ["tenant_id", "customer_id", "channels", "timezone",
                                          "quiet_start", "quiet_end"], _preference_rows(ids))
        await _copy(conn, "suppressions", ["tenant_id", "kind", "value_hash", "reason"],
                    ((TENANT, "email", hash_identifier("email", f"c{i}@example.org", key),
                      "complaint") for i in range(1, len(ids), 997)))
        copied = await _copy(conn, "messages", [
            "tenant_id", "id", "customer_id", "channel", "category", "purpose", "priority",
            "source_type", "source_id", "status", "scheduled_at", "sent_at", "tags"],
            _message_rows(ids, history))
        members = _rng.sample(ids, audience)
        await _copy(conn, "segment_memberships", ["tenant_id", "segment_id", "customer_id",
                                                  "entered_at"],
                    ((TENANT, segment_id, cid, NOW) for cid in members))
        await conn.execute(
            """insert into segment_states (tenant_id, segment_id, member_count, refreshed_at)
               values ($1, $2, $3, now())""", TENANT, segment_id, audience)
        print(f"generated {len(ids):,} customers, {copied:,} messages, {audience:,} segment "
              f"members by COPY in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        for table in ("customers", "consents", "preferences", "suppressions", "messages",
                      "segment_memberships"):
            await conn.execute(f"vacuum analyze {table}")
        print(f"vacuum analyze in {time.perf_counter() - started:.0f} s")
        await conn.execute("checkpoint")  # the plan must not pay for the generator's writes
    finally:
        await conn.close()


AUDIT = """
-- Periods (customer's local calendar day / week / month) over a rule's cap that contain
-- a message of the campaign, counted straight from the contact history.
with x as (
    select m.customer_id, m.channel, m.category, m.source_id,
           coalesce(m.sent_at, m.scheduled_at) as at,
           coalesce(z.name, $2) as tz
    from messages m
    left join preferences p on p.customer_id = m.customer_id
    left join pg_timezone_names z on z.name = p.timezone
    where m.category <> 'transactional' and m.status not in ('failed', 'skipped')
      and m.customer_id in (select customer_id from messages where source_id = $1)),
periods as (
    select customer_id, 'weekly_marketing' as rule, 3 as max,
           date_trunc('week', at at time zone tz) as period, source_id
    from x where category = 'marketing'
    union all
    select customer_id, 'daily_any', 1, date_trunc('day', at at time zone tz), source_id
    from x where category in ('marketing', 'service')
    union all
    select customer_id, 'sms_monthly', 4, date_trunc('month', at at time zone tz), source_id
    from x where category = 'marketing' and channel = 'sms')
select rule, count(*) as violations from (
    select customer_id, rule, period from periods
    group by customer_id, rule, max, period
    having count(*) > max and bool_or(source_id = $1)) v
group by rule
"""


async def _reuse(db: Database, ctx) -> str:
    """A database kept by `--keep`: forget the earlier campaigns, keep the data."""
    async with db.tenant_tx(ctx) as conn:
        await conn.execute("delete from message_events where message_id in "
                           "(select id from messages where source_type = 'campaign')")
        await conn.execute("delete from messages where source_type = 'campaign'")
        await conn.execute("update messages set status = 'planned', status_reason = null "
                           "where status_reason like 'displaced by campaign%'")
        for table in ("campaign_recipients", "campaign_batches", "campaigns"):
            await conn.execute(f"delete from {table}")
        return await conn.fetchval("select id from segments limit 1")


_handles: list[object] = []
_PG_DIR = ROOT / ".relais" / "bench" / "campaign-pg"
# A write-heavy run (half a million messages, their events and decisions): checkpoints
# every 1 GB of WAL (the default) would make most index pages be written twice, once as a
# full-page image. Applied to the bench's own embedded server only.
WAL_SETTINGS = {"max_wal_size": "8GB", "checkpoint_timeout": "30min"}


def _services() -> TestServices:
    """RELAIS_TEST_* servers when set, else an embedded server of the bench's own (a test
    run on the same machine must not share the database server being measured)."""
    if os.environ.get("RELAIS_TEST_DATABASE_URL"):
        return start_services()
    pg = embedded.start_postgres(_PG_DIR)
    redis = embedded.start_redis(ROOT / ".relais" / "bench" / "redis")
    _handles.extend([pg, redis])
    return TestServices(admin_dsn=embedded.superuser_dsn(pg), redis_url=redis.url,
                        database=f"relais_bench_{uuid.uuid4().hex[:8]}")


async def _server_settings(admin_dsn: str, tune: bool) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        if tune:
            for name, value in WAL_SETTINGS.items():
                await conn.execute(f"alter system set {name} = '{value}'")
            await conn.execute("select pg_reload_conf()")
        rows = await conn.fetch(
            "select name, setting, unit from pg_settings where name = any($1::text[])",
            ["shared_buffers", "max_wal_size", "checkpoint_timeout", "work_mem"])
        return ", ".join(f"{r['name']}={r['setting']}{r['unit'] or ''}" for r in rows)
    finally:
        await conn.close()


async def run(customers: int, history: int, audience: int, *, workers: int,
              keep: bool, database: str | None = None) -> float:
    started = _services()
    own_server = not os.environ.get("RELAIS_TEST_DATABASE_URL")
    print(f"server: {await _server_settings(started.admin_dsn, tune=own_server)}"
          f"{'' if own_server else ' (shared server: left as it is)'}")
    if database:
        started = msgspec.structs.replace(started, database=database)
    services = await create_database(started)
    settings = settings_for(services, log_level="WARNING", db_pool_max=4)
    db = await Database.connect(settings)
    try:
        if database:
            ctx = await tenants.tenant_context(db, TENANT, HqContext().actor)
            segment_id = await _reuse(db, ctx)
        else:
            tenant = await tenants.create_tenant(db, HqContext(), TenantCreate(
                id=TENANT, name="Bench network", country="FR", timezone="Europe/Paris",
                default_locale="fr-FR"))
            ctx = tenants.context_for(tenant, HqContext().actor)
            segment_id = (await create_segment(db, ctx, SegmentCreate(
                name="half", definition=d.Everyone()))).id
            async with db.tenant_tx(ctx) as conn:
                key = await load_suppression_key(conn, ctx, db.keys)
            ids = [uuid.UUID(int=_rng.getrandbits(128)) for _ in range(customers)]
            user = urlsplit(services.admin_dsn).username or "postgres"
            await generate(dsn_for(services.admin_dsn, user=user, database=services.database),
                           ids, history, audience, segment_id, key)
            await holdout.create_group(db, ctx, HoldoutCreate(percent=5))
        shared = await templates(db)
        campaign = await service.create_campaign(db, ctx, msgspec.convert({
            "name": "Monthly newsletter", "category": "marketing", "purpose": "marketing",
            "segment_id": segment_id, "channels": ["email", "sms"], "templates": shared,
            "priority": 40, "schedule": {"kind": "at", "at": SEND_AT.isoformat()},
            "control_percent": 5, "variants": [{"name": "A", "split": 50},
                                               {"name": "B", "split": 50}]},
            CampaignCreate))
        async with db.tenant_tx(ctx) as conn:
            await conn.execute("update campaigns set status = 'scheduled' where id = $1",
                               uuid.UUID(campaign.id))
            policy = await pressure.policy_in(conn, ctx.tenant_id)
        print(f"cap rules: {', '.join(f'{r.id} <= {r.max}/{r.window}' for r in policy.rules)}")

        started = time.perf_counter()
        batches = await planner.start(db, ctx, campaign.id)
        snapshot = time.perf_counter() - started
        slots = asyncio.Semaphore(workers)

        async def decide(batch: int) -> None:
            # As the worker does: batch jobs run side by side, their filters in parallel,
            # their cap steps one after the other under the tenant's pressure lock.
            async with slots:
                t = time.perf_counter()
                planned, excluded = await planner.plan_batch(db, ctx, campaign.id,
                                                             batch) or (0, 0)
                print(f"  batch {batch}: {planned:,} planned, {excluded:,} excluded in "
                      f"{time.perf_counter() - t:.2f} s")

        await asyncio.gather(*(decide(b) for b in batches))
        await planner.finish_if_done(db, ctx, campaign.id)
        took = time.perf_counter() - started
        print(f"\nplanned {audience:,} recipients in {took:.1f} s (snapshot {snapshot:.1f} s, "
              f"{len(batches)} batches, {workers} at a time) — goal <= 20 s: "
              f"{'OK' if took <= 20 else 'MISSED'}")

        f = await funnel(db, ctx, campaign.id)
        print(f"\nfunnel: audience {f.audience:,} → planned {f.planned:,} "
              f"(channels {f.channels}, variants {f.variants}, delayed by quiet hours "
              f"{f.delayed_by_quiet_hours:,}, displaced {f.displaced:,})")
        for step in f.steps:
            reasons = ", ".join(f"{r.reason} {r.count:,}" for r in step.reasons)
            print(f"  {step.step:<14} {step.entered:>9,} in {step.excluded:>9,} out"
                  f"{'  (' + reasons + ')' if reasons else ''}")

        async with db.tenant_tx(ctx) as conn:
            t = time.perf_counter()
            rows = await conn.fetch(AUDIT, campaign.id, ctx.timezone)
            violations = {r["rule"]: r["violations"] for r in rows}
            checked = await conn.fetchval(
                "select count(*) from messages where source_id = $1", campaign.id)
            displaced_others = await conn.fetchval(
                """select count(*) from messages where status = 'skipped'
                   and status_reason like 'displaced by campaign%'""")
            audit_took = time.perf_counter() - t
        print(f"\nSQL audit over the contact history ({checked:,} campaign messages, "
              f"{displaced_others:,} lower-priority planned messages displaced): "
              f"{sum(violations.values())} cap violations {violations or ''} "
              f"in {audit_took:.1f} s")
        assert not violations, violations
        return took
    finally:
        await db.close()
        if keep or database:
            print(f"kept database {services.database} (rerun with --database to reuse it)")
        else:
            await destroy_database(services)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=2_000_000)
    parser.add_argument("--audience", type=int, default=500_000)
    parser.add_argument("--workers", type=int, default=2,
                        help="batches decided at the same time (the worker's job slots)")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--database", help="reuse a database kept by --keep")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(msgspec.json.encode(vars(args)).decode())
    asyncio.run(run(args.customers, args.history, args.audience, workers=args.workers,
                    keep=args.keep, database=args.database))


if __name__ == "__main__":
    main()
