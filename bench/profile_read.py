"""Profile reads by id: the RLS cost in SQL, and API throughput over real HTTP.

1. SQL: the profile query under RLS (runtime role, tenant set once per transaction) against
   the same query with an explicit `tenant_id` WHERE and RLS off (superuser), same rows, same
   run; then the full per-request pattern (transaction + set_config + query).
2. HTTP: `GET /v1/tenants/{t}/customers/{id}` (the 360 view) and `GET /v1/tenants/{t}` through
   uvicorn, driven by a small keep-alive HTTP/1.1 client written on asyncio streams (httpx
   would be the bottleneck on 2 cores).

Goals (DESIGN.md): >= 2,000 req/s, p99 <= 25 ms, RLS cost <= 10%.

    .venv/bin/python -m bench.profile_read [--customers 20000] [--seconds 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from urllib.parse import urlsplit

import asyncpg

from bench.oauth import _free_port, _percentile, _start_server, _wait_ready
from core.auth import service as keys
from core.auth.schemas import ApiKeyCreate
from core.bootstrap import dsn_for
from core.db import Database, _init_connection
from core.events.schemas import Identifiers, IdentifyIn
from core.events.service import identify
from tenants import service as tenants
from tenants.context import HqContext
from tenants.schemas import TenantCreate
from tests.services import create_database, destroy_database, settings_for, start_services

HQ = HqContext()
PROFILE_SQL = "select * from customers where id = $1"
BASELINE_SQL = "select * from customers where tenant_id = $1 and id = $2"
ROUNDS = 5


async def _timed(label: str, n: int, call) -> float:
    started = time.perf_counter()
    for i in range(n):
        await call(i)
    elapsed = time.perf_counter() - started
    print(f"  {label:<58} {n / elapsed:>9.0f} q/s  {elapsed / n * 1e6:>7.1f} us/q")
    return elapsed


async def sql_phase(services, db: Database, tenant_id: str, ids: list[uuid.UUID]) -> None:
    n = min(20_000, len(ids) * 4)
    picks = [random.choice(ids) for _ in range(n)]
    superuser = urlsplit(services.admin_dsn).username or "postgres"
    admin = await asyncpg.connect(dsn_for(services.admin_dsn, user=superuser,
                                          database=services.database))
    await _init_connection(admin)  # same jsonb decoding as the app's pool: a fair baseline
    for i in range(2000):  # warm both connections' caches and plans before timing
        await admin.fetchrow(BASELINE_SQL, tenant_id, picks[i % n])
    print("SQL, one connection each, sequential; baseline and RLS alternate over "
          f"{ROUNDS} rounds (median ratio: a 70 us query is sensitive to the moment):")
    base = 0.0  # all n baseline queries, for the per-request ratio below
    ratios = []
    async with db.pool.acquire() as conn, conn.transaction():
        await conn.execute("select set_config('relais.tenant_id', $1, true)", tenant_id)
        for i in range(2000):
            await conn.fetchrow(PROFILE_SQL, picks[i % n])
        for r in range(ROUNDS):
            chunk = picks[r::ROUNDS]
            b = await _timed(f"round {r + 1}: explicit WHERE tenant_id, RLS off (superuser)",
                             len(chunk), lambda i, c=chunk: admin.fetchrow(
                                 BASELINE_SQL, tenant_id, c[i]))
            t = await _timed(f"round {r + 1}: RLS on, tenant set for the transaction",
                             len(chunk), lambda i, c=chunk: conn.fetchrow(PROFILE_SQL, c[i]))
            base += b
            ratios.append(t / b)

    async def per_request(i: int) -> None:
        async with db.pool.acquire() as conn, conn.transaction():
            await conn.execute("select set_config('relais.tenant_id', $1, true)", tenant_id)
            await conn.fetchrow(PROFILE_SQL, picks[i])

    full = await _timed("RLS on, per request: pool + tx + set_config + query", n,
                        per_request)
    await admin.close()
    print(f"  RLS predicate cost: {(statistics.median(ratios) - 1) * 100:+.1f}% median "
          f"(rounds {min(ratios) - 1:+.0%} … {max(ratios) - 1:+.0%}; goal <= 10%)   "
          f"per-request transaction pattern: {full / base:.2f}x the bare query")


class RawClient:
    """Keep-alive HTTP/1.1 GETs on one connection; reads Content-Length bodies."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}\r\n"
                          .encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        self.writer.close()


async def http_phase(port: int, key: str, label: str, paths: list[str], seconds: float,
                     concurrency: int) -> None:
    latencies: list[float] = []
    failures = 0
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + seconds

    async def worker(n: int) -> None:
        nonlocal failures
        client = RawClient("127.0.0.1", port, {"Authorization": f"Bearer {key}"})
        await client.connect()
        i = n
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            status = await client.get(paths[i % len(paths)])
            latencies.append(time.perf_counter() - started)
            failures += status != 200
            statuses[status] = statuses.get(status, 0) + 1
            i += concurrency
        await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    print(f"  {label:<40} {len(latencies) / elapsed:>8.0f} req/s  "
          f"p50 {_percentile(latencies, 50) * 1000:>6.1f} ms  "
          f"p99 {_percentile(latencies, 99) * 1000:>6.1f} ms  failures {failures}"
          + (f" {statuses}" if failures else ""))


async def run(customers: int, seconds: float, workers: int, concurrency: int) -> None:
    services = await create_database(start_services())
    port = _free_port()
    settings = settings_for(services, host="127.0.0.1", port=port, log_level="WARNING",
                            rate_limit_per_minute=1_000_000_000)
    db = await Database.connect(settings)
    server = None
    try:
        tenant = await tenants.create_tenant(db, HQ, TenantCreate(
            id="bench", name="Bench", country="FR", timezone="Europe/Paris",
            default_locale="fr-FR"))
        ctx = tenants.context_for(tenant, HQ.actor)
        key = (await keys.create_tenant_key(db, ctx, ApiKeyCreate(
            name="bench", scopes=["customers:read", "tenants:read"]))).key
        ids: list[uuid.UUID] = []
        for start in range(0, customers, 1000):
            items = [IdentifyIn(identifiers=Identifiers(email=f"rider{i}@transit-mail.fr"),
                                traits={"first_name": f"P{i}"})
                     for i in range(start, min(customers, start + 1000))]
            ids += [r.customer_id for r in await identify(db, ctx, items, source="bench")]
        print(f"{customers} profiles loaded")
        await sql_phase(services, db, tenant.id, ids)

        server = _start_server(settings, port, workers)
        await _wait_ready(f"http://127.0.0.1:{port}", server)
        profile_paths = [f"/v1/tenants/{tenant.id}/customers/{cid}" for cid in ids[:5000]]
        print(f"HTTP, {workers} uvicorn worker(s), {concurrency} connections, {seconds:.0f} s "
              "each (client on the same 2 cores):")
        await http_phase(port, key, "warm-up", profile_paths, 2, concurrency)
        await http_phase(port, key, "GET /v1/tenants/{t} (auth + tenant)",
                         [f"/v1/tenants/{tenant.id}"], seconds, concurrency)
        await http_phase(port, key, "GET customer 360 view", profile_paths, seconds,
                         concurrency)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        await db.close()
        await destroy_database(services)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.customers, args.seconds, args.workers, args.concurrency))


if __name__ == "__main__":
    main()
