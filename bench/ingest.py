"""Ingestion throughput over real HTTP, against a raw COPY baseline measured in the same run.

1. identify: profiles upserted through `POST /identify:batch`, 30% of the items carrying an
   identifier of a profile loaded earlier (so they resolve and update instead of creating);
2. events: `POST /events:batch` (1,000 events a request), every event resolved to a profile
   through its identifiers, idempotent by message_id (a replayed slice must come back as
   duplicates and store nothing);
3. baseline: asyncpg `COPY` of the same rows into the same `events` table (superuser: COPY
   is not allowed under row-level security), no resolution, no idempotency — in one stream
   (the goal's baseline) and in 1,000-row transactions (the HTTP path's shape).

Steps 2-3 run in alternating rounds; prints events/s, identify items/s, CPU per row of the
server, PostgreSQL and client, and the median HTTP / COPY ratio. Goals: >= 20,000 events/s
and >= 40% of COPY.

    .venv/bin/python -m bench.ingest [--events 100000] [--rounds 3] [--profiles 20000]
                                     [--concurrency 4] [--workers 2]

Uses RELAIS_TEST_DATABASE_URL / RELAIS_TEST_REDIS_URL when set, else embedded servers of its
own (.relais/bench); the app runs under uvicorn (one worker per core) in its own processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import msgspec

from bench.oauth import ROOT, _free_port, _wait_ready
from core import embedded
from core.auth import service as keys
from core.auth.schemas import ApiKeyCreate
from core.bootstrap import dsn_for
from core.db import Database
from core.runtime import environment_for
from tenants import service as tenants
from tenants.context import HqContext
from tenants.schemas import TenantCreate
from tests.services import (
    TestServices,
    create_database,
    destroy_database,
    settings_for,
    start_services,
)

HQ = HqContext()
BATCH = 1000
_rng = random.Random(42)
_EVENT_KINDS = [
    ("trip_validated", lambda: {"line": f"L{_rng.randint(1, 40)}", "stop": "S12",
                                "mode": _rng.choice(["bus", "tram", "metro"])}),
    ("ticket_purchased", lambda: {"product": "single", "amount": 1.9, "currency": "EUR",
                                  "channel": "app"}),
    ("app_opened", lambda: {"app_version": "5.2.1", "platform": "android"}),
    ("loyalty_points_earned", lambda: {"points": 10, "balance": 240}),
]


_handles: list[object] = []
_PG_DIR = ROOT / ".relais" / "bench" / "pg"


def _tree_cpu(root_pid: int | None) -> float:
    """CPU seconds used so far by a process and its descendants (Linux /proc)."""
    if root_pid is None:
        return 0.0
    procs: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        procs[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += procs.get(pid, (0, 0))[1]
        stack += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


class _Cpu:
    """CPU per row of the server, PostgreSQL (embedded only) and this client, so a run on a
    busy machine still shows what each path costs."""

    def __init__(self, server_pid: int | None, pg_pid: int | None) -> None:
        self.pids = {"server": server_pid, "postgres": pg_pid}

    def __enter__(self) -> _Cpu:
        self.start = {k: _tree_cpu(p) for k, p in self.pids.items()}
        self.client = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = {k: _tree_cpu(p) - self.start[k] for k, p in self.pids.items()}
        self.used["client"] = time.process_time() - self.client

    def per_row(self, rows: int) -> str:
        parts = [f"{k} {v / rows * 1e6:.1f}" for k, v in self.used.items()
                 if self.pids.get(k, 1) is not None]
        return f"CPU µs/row: {', '.join(parts)}, total {sum(self.used.values()) / rows * 1e6:.1f}"


def _pg_pid() -> int | None:
    if os.environ.get("RELAIS_TEST_DATABASE_URL"):
        return None  # a shared server: its CPU is not ours alone
    with open(_PG_DIR / "postmaster.pid") as f:
        return int(f.readline())


def _services() -> TestServices:
    """RELAIS_TEST_* servers when set, else embedded ones of the bench's own (a test run on
    the same machine must not share the database server being measured)."""
    if os.environ.get("RELAIS_TEST_DATABASE_URL"):
        return start_services()
    pg = embedded.start_postgres(_PG_DIR)
    redis = embedded.start_redis(ROOT / ".relais" / "bench" / "redis")
    _handles.extend([pg, redis])
    return TestServices(admin_dsn=embedded.superuser_dsn(pg), redis_url=redis.url,
                        database=f"relais_bench_{uuid.uuid4().hex[:8]}")


def _start_server(settings, port: int, workers: int) -> subprocess.Popen:
    """The production entry point (`app_from_environment`) under uvicorn."""
    env = environment_for(settings) | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app_from_environment", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log", "--workers", str(workers)], env=env, cwd=ROOT)


def _identify_items(profiles: int) -> list[list[dict]]:
    """Batches of identify items; 30% reuse the app id of a profile of an earlier batch."""
    items, fresh = [], 0
    for i in range(profiles):
        batch_start = (i // BATCH) * BATCH
        if i >= BATCH and _rng.random() < 0.3:
            known = _rng.randrange(0, min(fresh, batch_start))  # loaded by an earlier batch
            items.append({"identifiers": {"app_user_id": f"app-{known}",
                                          "email": f"client{known}.pro@laposte.net"},
                          "traits": {"language": "fr", "postal_code": "69003"}})
        else:
            items.append({"identifiers": {"app_user_id": f"app-{fresh}"},
                          "traits": {"first_name": "Camille", "country": "FR"}})
            fresh += 1
    return [items[i:i + BATCH] for i in range(0, len(items), BATCH)], fresh


def _events(count: int, known: int) -> list[dict]:
    now = datetime.now(UTC)
    out = []
    for _ in range(count):
        kind, props = _rng.choice(_EVENT_KINDS)
        # 97% known app users, 3% first-time visitors (their event creates the profile).
        who = (f"app-{_rng.randrange(known)}" if _rng.random() < 0.97
               else f"new-{uuid.uuid4().hex[:12]}")
        # Producers' idempotency keys are UUIDs (Segment, RudderStack, mobile SDKs).
        out.append({"message_id": str(uuid.UUID(int=_rng.getrandbits(128), version=4)),
                    "type": kind,
                    "identifiers": {"app_user_id": who},
                    "occurred_at": (now - timedelta(minutes=_rng.randrange(100_000))).isoformat(),
                    "properties": props()})
    return out


async def _post_all(http: httpx.AsyncClient, path: str, bodies: list[bytes], headers: dict,
                    concurrency: int) -> tuple[float, dict[str, int]]:
    queue = list(enumerate(bodies))
    totals: dict[str, int] = {}
    decoder = msgspec.json.Decoder()

    async def worker() -> None:
        while queue:
            _, body = queue.pop(0)
            r = await http.post(path, content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
            result = decoder.decode(r.content)
            for k in ("accepted", "duplicates", "rejected", "quarantined"):
                totals[k] = totals.get(k, 0) + result[k]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, totals


def _copy_records(tenant_id: str, events: list[dict],
                  customers: list[uuid.UUID]) -> list[tuple]:
    return [(tenant_id, f"copy-{e['message_id']}", _rng.choice(customers), e["type"],
             datetime.fromisoformat(e["occurred_at"]),
             msgspec.json.encode(e["properties"]).decode(), "bench")
            for e in events]


async def _copy(superuser_dsn: str, records: list[tuple], batch: int | None) -> tuple[float, _Cpu]:
    """COPY of the same rows into the same table (with its indexes): in one stream, or in
    transactions of `batch` rows like the HTTP path. CPU is read while the connection (its
    backend process) is still alive."""
    columns = ["tenant_id", "message_id", "customer_id", "type", "occurred_at", "properties",
               "source"]
    chunks = [records] if batch is None else [records[i:i + batch]
                                              for i in range(0, len(records), batch)]
    conn = await asyncpg.connect(superuser_dsn)
    try:
        with _Cpu(None, _pg_pid()) as cpu:
            started = time.perf_counter()
            for chunk in chunks:
                await conn.copy_records_to_table("events", records=chunk, columns=columns)
            took = time.perf_counter() - started
        return took, cpu
    finally:
        await conn.close()


async def run(events: int, profiles: int, concurrency: int, workers: int,
              rounds: int) -> dict[str, float]:
    services = await create_database(_services())
    port = _free_port()
    settings = settings_for(services, host="127.0.0.1", port=port, log_level="WARNING",
                            rate_limit_per_minute=1_000_000_000, db_pool_max=8)
    db = await Database.connect(settings)
    server = None
    try:
        for tenant_id in ("bench", "bench-copy", "bench-copyb"):
            await tenants.create_tenant(db, HQ, TenantCreate(
                id=tenant_id, name="Bench network", country="FR", timezone="Europe/Paris",
                default_locale="fr-FR"))
        ctx = await tenants.tenant_context(db, "bench", HQ.actor)
        key = (await keys.create_tenant_key(db, ctx, ApiKeyCreate(
            name="bench", scopes=["events:write", "customers:write"]))).key
        server = _start_server(settings, port, workers)
        url = f"http://127.0.0.1:{port}"
        await _wait_ready(url, server)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
            identify_batches, fresh = _identify_items(profiles)
            bodies = [msgspec.json.encode({"items": b}) for b in identify_batches]
            took, totals = await _post_all(http, "/v1/tenants/bench/identify:batch", bodies,
                                           headers, concurrency)
            identify_rate = profiles / took
            print(f"identify  {profiles:>8} items (30% overlapping) {took:6.2f} s "
                  f"{identify_rate:>9,.0f} items/s   {totals}")

            # Warm-up outside the measure (connections, statement caches, code paths).
            warm = [msgspec.json.encode({"items": [dict(r, message_id=f"warm-{i}-{j}")
                                                   for j, r in enumerate(_events(BATCH, fresh))]})
                    for i in range(2)]
            await _post_all(http, "/v1/tenants/bench/events:batch", warm, headers, 2)
            async with db.tenant_tx(ctx) as conn:
                customers = [r[0] for r in await conn.fetch("select id from customers")]
            superuser = dsn_for(services.admin_dsn, user=_user(services.admin_dsn),
                                database=services.database)
            # Rounds alternate HTTP and COPY so both see the same machine; the median ratio
            # is the figure (a shared machine makes any single round noisy).
            ratios, batch_ratios, rates = [], [], []
            for n in range(rounds):
                rows = _events(events, fresh)
                bodies = [msgspec.json.encode({"items": rows[i:i + BATCH]})
                          for i in range(0, len(rows), BATCH)]
                with _Cpu(server.pid, _pg_pid()) as http_cpu:
                    took, totals = await _post_all(http, "/v1/tenants/bench/events:batch",
                                                   bodies, headers, concurrency)
                http_rate = events / took
                print(f"round {n + 1}   {events:>8} events over HTTP, batches of {BATCH}, "
                      f"x{concurrency}  {took:6.2f} s {http_rate:>9,.0f} events/s   {totals}")
                print(f"          {http_cpu.per_row(events)}")
                copy_took, copy_cpu = await _copy(
                    superuser, _copy_records("bench-copy", rows, customers), None)
                batch_took, _ = await _copy(
                    superuser, _copy_records("bench-copyb", rows, customers), BATCH)
                copy_rate, batch_rate = events / copy_took, events / batch_took
                print(f"          COPY of the same rows: one stream {copy_rate:>9,.0f} rows/s, "
                      f"per {BATCH}-row batch {batch_rate:>9,.0f} rows/s")
                print(f"          {copy_cpu.per_row(events)} (one stream)")
                ratios.append(http_rate / copy_rate)
                batch_ratios.append(http_rate / batch_rate)
                rates.append(http_rate)
            replay = bodies[:10]
            _, again = await _post_all(http, "/v1/tenants/bench/events:batch", replay, headers,
                                       concurrency)
            print(f"replay    {len(replay) * BATCH:>8} events sent again: "
                  f"{again.get('duplicates', 0)} duplicates, {again.get('accepted', 0)} stored")
        async with db.tenant_tx(ctx) as conn:
            stored = await conn.fetchval("select count(*) from events where type <> 'identify'")
        print(f"stored events: {stored} (expected {rounds * events + 2 * BATCH})")
        http_rate, ratio = statistics.median(rates), statistics.median(ratios)
        print(f"HTTP ingestion (median): {http_rate:,.0f} events/s  (goal >= 20,000)")
        print(f"ratio HTTP / COPY one stream (median): {ratio:.2f}  (goal >= 0.40)  "
              f"rounds {', '.join(f'{r:.2f}' for r in ratios)}")
        print(f"ratio HTTP / COPY per {BATCH}-row batch (median): "
              f"{statistics.median(batch_ratios):.2f}")
        return {"events_per_s": http_rate, "ratio": ratio, "identify_per_s": identify_rate,
                "ratio_batched_copy": statistics.median(batch_ratios)}
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        await db.close()
        await destroy_database(services)


def _user(dsn: str) -> str:
    from urllib.parse import urlsplit
    return urlsplit(dsn).username or "postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per round")
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn worker processes (default: one per core)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(run(args.events, args.profiles, args.concurrency, args.workers, args.rounds))


if __name__ == "__main__":
    main()
