"""Segment counts and lifecycle evaluation on one big tenant, against a naive baseline.

1. generates one tenant with N profiles (default 1M) and M events (default 10M), plus
   identifiers and consents, with COPY (as the superuser: COPY is refused under RLS);
2. times the count of 5 representative segments through the service the API uses
   (`POST /segments/preview` with `sample_size: 0`), cold then warm (goal <= 2 s each);
3. times a full lifecycle evaluation of every profile on the default canvas (goal
   <= 60 s; the first run moves everybody from "unassigned" and writes one stage_changed
   event each, the worst case), then a second run;
4. baseline: a naive per-customer loop (one query per customer and table, then the
   reference evaluator of tests/segments in Python) on a 10k sample, extrapolated to N.

    .venv/bin/python -m bench.segments [--profiles 1000000] [--events 10000000]

Uses RELAIS_TEST_DATABASE_URL / RELAIS_TEST_REDIS_URL when set, else embedded servers, like
the test suite. Generating 10M events takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import msgspec

from core.bootstrap import dsn_for
from core.db import Database, fetch_first
from core.lifecycle.model import stage_model
from core.lifecycle.service import evaluate
from core.segments.schemas import PreviewRequest
from core.segments.service import preview
from core.segments.validate import parse
from core.segments.vocabulary import tenant_vocabulary
from tenants import service as tenants
from tenants.context import HqContext
from tenants.overlay import effective
from tenants.schemas import TenantCreate
from tests.segments.evaluator import Customer, Evaluator, Event
from tests.services import create_database, destroy_database, settings_for, start_services

TENANT = "bench-seg"
CHUNK = 200_000
NOW = datetime.now(UTC)
_rng = random.Random(5)

SEGMENTS: dict[str, dict] = {
    "T1 regulars: >= 10 trips on line T1 in 30 days": {
        "type": "event", "event": "trip_validated", "op": "gte", "value": 10,
        "window": {"last_days": 30}, "where": [{"property": "line", "value": "T1"}]},
    "reachable French: country FR, email known, marketing email consent": {
        "type": "and", "conditions": [
            {"type": "field", "field": "country", "value": "FR"},
            {"type": "identifier", "kind": "email"},
            {"type": "consent", "channel": "email", "purpose": "marketing"}]},
    "spenders: >= 50 spent in 90 days or average basket > 20": {
        "type": "or", "conditions": [
            {"type": "event", "event": "ticket_purchased", "measure": "sum",
             "property": "amount", "op": "gte", "value": 50, "window": {"last_days": 90}},
            {"type": "event", "event": "ticket_purchased", "measure": "avg",
             "property": "amount", "op": "gt", "value": 20}]},
    "RFM champions: recency 4-5, frequency >= 3": {
        "type": "rfm", "event": "ticket_purchased", "recency_days": [7, 30, 90, 180],
        "frequency_counts": [1, 2, 4, 8], "window": {"last_days": 365},
        "recency": {"min": 4, "max": 5}, "frequency": {"min": 3, "max": 5}},
    "10% sample of silent under-35s: no trip for 60 days, born after 1990": {
        "type": "and", "conditions": [
            {"type": "bucket", "min": 0, "max": 999},
            {"type": "field", "field": "birth_date", "op": "gte", "value": "1991-01-01"},
            {"type": "not", "condition": {"type": "event", "event": "trip_validated",
                                          "measure": "days_since_last", "op": "lte",
                                          "value": 60}}]},
}


# -- data ----------------------------------------------------------------------------------

def _customer_rows(ids: list[uuid.UUID]):
    for cid in ids:
        birth = date(1950, 1, 1) + timedelta(days=_rng.randrange(0, 365 * 55))
        yield (TENANT, cid, _rng.choice(["FR", "FR", "FR", "BE", "MA"]),
               _rng.choice(["fr", "en", "ar"]), birth, f"69{_rng.randrange(1000):03d}", "{}",
               NOW - timedelta(days=_rng.uniform(0, 900)))


def _event_rows(ids: list[uuid.UUID], total: int):
    """Activity is skewed: a few heavy travellers, many occasional ones."""
    weights = [_rng.paretovariate(1.5) for _ in ids]
    scale = total / sum(weights)
    n = 0
    for cid, weight in zip(ids, weights, strict=True):
        count = max(0, round(weight * scale))
        recent = _rng.uniform(0, 420)  # how long ago this customer was last active
        for _ in range(count):
            if n >= total:
                return
            n += 1
            when = NOW - timedelta(days=recent + _rng.expovariate(1 / 60))
            roll = _rng.random()
            if roll < 0.7:
                line = "T1" if _rng.random() < 0.3 else f"L{_rng.randint(1, 40)}"
                yield (TENANT, f"b{n}", cid, "trip_validated", when,
                       f'{{"line": "{line}", "mode": "tram"}}', "bench")
            elif roll < 0.85:
                amount = round(_rng.choice([1.9, 1.9, 5.8, 16.5, 65.0]), 2)
                yield (TENANT, f"b{n}", cid, "ticket_purchased", when,
                       f'{{"product": "p", "amount": {amount}}}', "bench")
            elif roll < 0.95:
                yield (TENANT, f"b{n}", cid, "app_opened", when, "{}", "bench")
            else:
                yield (TENANT, f"b{n}", cid, "subscription_renewed", when,
                       '{"plan": "monthly", "amount": 65.0}', "bench")


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


async def generate(superuser_dsn: str, profiles: int, events: int) -> list[uuid.UUID]:
    ids = [uuid.UUID(int=_rng.getrandbits(128)) for _ in range(profiles)]
    conn = await asyncpg.connect(superuser_dsn)
    try:
        started = time.perf_counter()
        await _copy(conn, "customers", ["tenant_id", "id", "country", "language", "birth_date",
                                        "postal_code", "attributes", "created_at"],
                    _customer_rows(ids))
        await _copy(conn, "identifiers", ["tenant_id", "kind", "value", "customer_id",
                                          "source"],
                    ((TENANT, "email", f"c{i}@example.org", cid, "bench")
                     for i, cid in enumerate(ids) if i % 10 < 7))
        await _copy(conn, "consents", ["tenant_id", "customer_id", "channel", "purpose",
                                       "status", "legal_basis", "source"],
                    ((TENANT, cid, "email", "marketing",
                      "granted" if i % 3 else "withdrawn", "consent", "bench")
                     for i, cid in enumerate(ids) if i % 2 == 0))
        copied = await _copy(conn, "events", ["tenant_id", "message_id", "customer_id", "type",
                                              "occurred_at", "properties", "source"],
                             _event_rows(ids, events))
        print(f"generated {profiles:,} profiles, {copied:,} events by COPY in "
              f"{time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        for table in ("customers", "identifiers", "consents", "events"):
            await conn.execute(f"vacuum analyze {table}")
        print(f"vacuum analyze in {time.perf_counter() - started:.0f} s")
    finally:
        await conn.close()
    return ids


# -- naive baseline ------------------------------------------------------------------------

async def _load_one(conn: asyncpg.Connection, cid: uuid.UUID) -> Customer:
    row = await conn.fetchrow(
        """select id, country, first_name, birth_date, stage, created_at, attributes
           from customers where id = $1""", cid)
    events = await conn.fetch(
        "select type, occurred_at, properties from events where customer_id = $1", cid)
    kinds = await conn.fetch("select kind from identifiers where customer_id = $1", cid)
    consents = await conn.fetch(
        "select channel, purpose, status from consents where customer_id = $1", cid)
    return Customer(
        id=str(row["id"]), attributes=row["attributes"],
        fields={k: row[k] for k in ("country", "first_name", "birth_date", "stage",
                                    "created_at")},
        events=[Event(e["type"], e["occurred_at"], e["properties"]) for e in events],
        identifiers={k["kind"] for k in kinds},
        consents={(c["channel"], c["purpose"]): c["status"] for c in consents})


async def naive_sample(db: Database, ctx, sample: list[uuid.UUID]) -> tuple[float, list]:
    """Per-customer loading time and the loaded customers (one query per table each)."""
    started = time.perf_counter()
    loaded = []
    async with db.tenant_tx(ctx) as conn:
        for cid in sample:
            loaded.append(await _load_one(conn, cid))
    return (time.perf_counter() - started) / len(sample), loaded


# -- run -----------------------------------------------------------------------------------

async def run(profiles: int, events: int, sample_size: int, *, keep: bool = False,
              database: str | None = None) -> dict[str, float]:
    started = start_services()
    if database:  # a database kept by an earlier `--keep` run: skip generation
        started = msgspec.structs.replace(started, database=database)
    services = await create_database(started)
    settings = settings_for(services, log_level="WARNING", db_pool_max=4)
    db = await Database.connect(settings)
    results: dict[str, float] = {}
    try:
        user = urlsplit(services.admin_dsn).username or "postgres"
        superuser = dsn_for(services.admin_dsn, user=user, database=services.database)
        if database:
            ctx = await tenants.tenant_context(db, TENANT, HqContext().actor)
            conn = await asyncpg.connect(superuser)
            try:  # back to the generated state: no stages, no facts, no dead rows
                await conn.execute("update customers set stage = null where stage is not null")
                await conn.execute("delete from events where source = 'relais'")
                await conn.execute("delete from segment_memberships")
                for table in ("customers", "events", "segment_memberships"):
                    await conn.execute(f"vacuum (full, analyze) {table}")
                ids = [r["id"] for r in await conn.fetch("select id from customers")]
            finally:
                await conn.close()
            profiles = len(ids)
        else:
            tenant = await tenants.create_tenant(db, HqContext(), TenantCreate(
                id=TENANT, name="Bench network", country="FR", timezone="Europe/Paris",
                default_locale="fr-FR"))
            ctx = tenants.context_for(tenant, HqContext().actor)
            ids = await generate(superuser, profiles, events)
        sample = _rng.sample(ids, min(sample_size, len(ids)))
        per_customer_load, loaded = await naive_sample(db, ctx, sample)
        async with db.tenant_tx(ctx) as conn:
            vocab = await tenant_vocabulary(conn, ctx)
        print(f"naive loop: {per_customer_load * 1000:.2f} ms per customer to load its data "
              f"({len(sample):,} sampled)")
        async with db.tenant_tx(ctx) as conn:  # context: the floor of any full-table query
            started = time.perf_counter()
            await fetch_first(conn, "select count(*) from events")  # parallel, as counts
            scan = time.perf_counter() - started
        print(f"bare parallel scan of the events table: {scan:.2f} s (machine speed now)")
        print(f"\n{'segment':<72} {'count':>9} {'cold s':>7} {'warm s':>7} {'naive s':>8} "
              f"{'ratio':>7}")
        for name, raw in SEGMENTS.items():
            request = PreviewRequest(definition=parse(raw), sample_size=0)
            started = time.perf_counter()
            result = await preview(db, ctx, request, now=NOW)
            cold = time.perf_counter() - started
            started = time.perf_counter()
            await preview(db, ctx, request, now=NOW)
            warm = time.perf_counter() - started
            evaluator = Evaluator(vocab, NOW)
            started = time.perf_counter()
            for customer in loaded:
                evaluator.matches(request.definition, customer)
            per_customer = per_customer_load + (time.perf_counter() - started) / len(loaded)
            naive = per_customer * profiles
            results[name] = warm
            print(f"{name:<72} {result.count:>9,} {cold:>7.2f} {warm:>7.2f} {naive:>8.0f} "
                  f"{naive / warm:>6.0f}x")

        canvas = await effective(db, ctx, "lifecycle_canvas")
        rules = [(s.name, parse(s.when, canvas.parameters)) for s in stage_model(canvas).stages]
        evaluator = Evaluator(vocab, NOW)
        started = time.perf_counter()
        for customer in loaded:
            next(name for name, rule in rules if evaluator.matches(rule, customer))
        naive = (per_customer_load + (time.perf_counter() - started) / len(loaded)) * profiles
        for label in ("first (everyone changes)", "second (steady state)"):
            started = time.perf_counter()
            stage_run = await evaluate(db, ctx, now=NOW)
            took = time.perf_counter() - started
            results[f"lifecycle {label}"] = took
            print(f"\nlifecycle evaluation, {label}: {stage_run.evaluated:,} customers, "
                  f"{stage_run.changed:,} changed, {took:.1f} s (goal <= 60 s); naive loop "
                  f"extrapolated {naive:.0f} s without writes: {naive / took:.0f}x")
        over = [n for n, t in results.items() if not n.startswith("lifecycle") and t > 2]
        print(f"\nsegment counts over 2 s: {over or 'none'}")
        return results
    finally:
        await db.close()
        if keep:
            print(f"kept database {services.database} (rerun with --database to reuse it)")
        else:
            await destroy_database(services)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=10_000,
                        help="customers in the naive per-customer baseline")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--database", help="reuse a database kept by --keep")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(msgspec.json.encode(vars(args)).decode())
    asyncio.run(run(args.profiles, args.events, args.sample, keep=args.keep,
                    database=args.database))


if __name__ == "__main__":
    main()
