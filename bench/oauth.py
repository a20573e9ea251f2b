"""OAuth throughput: client-credentials token issuance, and GETs authenticated by an OAuth
access token, against the app served by uvicorn in its own process.

Baseline, measured in the same run: the same GET authenticated by a tenant API key (the
ratio shows what OAuth authentication costs over keys). Prints req/s and latency
percentiles for each.

    .venv/bin/python -m bench.oauth [--requests 2000] [--concurrency 16]

Uses RELAIS_TEST_DATABASE_URL / RELAIS_TEST_REDIS_URL when set (a superuser URL: a fresh
database is created and dropped), else embedded servers, like the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from core.auth import service as keys
from core.auth.schemas import ApiKeyCreate
from core.db import Database
from core.oauth import clients
from core.oauth.schemas import OAuthClientCreate
from core.runtime import environment_for
from tenants import service as tenants
from tenants.context import HqContext
from tenants.schemas import TenantCreate
from tests.services import create_database, destroy_database, settings_for, start_services

ROOT = Path(__file__).resolve().parent.parent
HQ = HqContext()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def _measure(name: str, total: int, concurrency: int, deadline_s: float,
                   call: Callable[[], Awaitable[httpx.Response]],
                   expect: int = 200) -> dict[str, float]:
    """`total` calls, `concurrency` at a time, stopping early at `deadline_s`."""
    latencies: list[float] = []
    failures = 0
    remaining = total
    stop_at = time.monotonic() + deadline_s

    async def worker() -> None:
        nonlocal remaining, failures
        while remaining > 0 and time.monotonic() < stop_at:
            remaining -= 1
            started = time.perf_counter()
            r = await call()
            latencies.append(time.perf_counter() - started)
            if r.status_code != expect:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    result = {"requests": len(latencies), "rps": len(latencies) / elapsed,
              "p50_ms": _percentile(latencies, 50) * 1000,
              "p99_ms": _percentile(latencies, 99) * 1000, "failures": failures}
    print(f"{name:<42} {result['requests']:>6} req  {result['rps']:>8.0f} req/s  "
          f"p50 {result['p50_ms']:>6.1f} ms  p99 {result['p99_ms']:>6.1f} ms  "
          f"failures {failures}")
    return result


def _start_server(settings, port: int, workers: int = 1) -> subprocess.Popen:
    """The production entry point (`app_from_environment`) under uvicorn."""
    env = environment_for(settings) | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app_from_environment", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log", "--workers", str(workers)], env=env, cwd=ROOT)


async def _wait_ready(url: str, process: subprocess.Popen) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError("the server exited during start-up")
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not become ready")


async def run(requests: int, concurrency: int, deadline_s: float) -> dict[str, dict]:
    services = await create_database(start_services())
    port = _free_port()
    # One client from one address, as fast as it can: the OAuth limits would be what is
    # measured (they have their own tests), so the bench lifts them.
    settings = settings_for(services, host="127.0.0.1", port=port, log_level="WARNING",
                            rate_limit_per_minute=1_000_000_000,
                            oauth_client_rate_limit_per_minute=1_000_000_000,
                            oauth_address_rate_limit_per_minute=1_000_000_000)
    db = await Database.connect(settings)
    server = None
    try:
        tenant = await tenants.create_tenant(db, HQ, TenantCreate(
            id="bench", name="Bench network", country="FR", timezone="Europe/Paris",
            default_locale="fr-FR"))
        ctx = await tenants.tenant_context(db, tenant.id, HQ.actor)
        api_key = (await keys.create_tenant_key(db, ctx, ApiKeyCreate(
            name="bench", scopes=["tenants:read"]))).key
        client = await clients.create_client(db, HQ, OAuthClientCreate(
            name="Bench partner", client_type="confidential", scopes=["tenants:read"],
            grant_types=["client_credentials"], tenant=tenant.id))
        server = _start_server(settings, port)
        url = f"http://127.0.0.1:{port}"
        await _wait_ready(url, server)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
            basic = httpx.BasicAuth(client.client_id, client.client_secret)
            form = {"grant_type": "client_credentials"}
            token = (await http.post("/oauth/token", data=form, auth=basic)).json()
            bearer = {"Authorization": f"Bearer {token['access_token']}"}
            keyed = {"Authorization": f"Bearer {api_key}"}
            path = f"/v1/tenants/{tenant.id}"
            for _ in range(50):  # warm the pool, caches and code paths
                await http.get(path, headers=bearer)
                await http.get(path, headers=keyed)
            print(f"OAuth bench: {requests} requests per case, concurrency {concurrency}")
            results = {
                "token": await _measure(
                    "client_credentials token issuance", requests, concurrency, deadline_s,
                    lambda: http.post("/oauth/token", data=form, auth=basic)),
                "get_key": await _measure(
                    "GET tenant, API key (baseline)", requests, concurrency, deadline_s,
                    lambda: http.get(path, headers=keyed)),
                "get_token": await _measure(
                    "GET tenant, OAuth access token", requests, concurrency, deadline_s,
                    lambda: http.get(path, headers=bearer)),
            }
        base, oauth = results["get_key"], results["get_token"]
        print(f"ratio OAuth GET / API-key GET throughput: {oauth['rps'] / base['rps']:.2f}  "
              f"(p99 {oauth['p99_ms']:.1f} vs {base['p99_ms']:.1f} ms)")
        print(f"ratio token issuance / API-key GET throughput: "
              f"{results['token']['rps'] / base['rps']:.2f}")
        return results
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        await db.close()
        await destroy_database(services)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=60,
                        help="stop each case after this long, whatever the count")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(run(args.requests, args.concurrency, args.max_seconds))


if __name__ == "__main__":
    main()
