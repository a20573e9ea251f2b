"""File import throughput and memory: a ticketing CSV export of profiles + purchase events.

Each row carries identifiers (email, ticketing account), profile traits, a consent-free
purchase event; one customer in three appears twice, so a share of rows update a profile
instead of creating one. Measured in one run:

1. baseline: read + map only (the connector and the mapping, no database), rows/s;
2. the full import as the worker runs it (`execute_run`: read, map, identify, ingest events,
   checkpoint per batch), rows/s, for a small file and for the large one;
3. peak resident memory of each import (sampled every 50 ms): flat means the large file's
   peak is about the small file's, whatever its size.

Goals: >= 10,000 rows/s on the large file, memory flat in file size.

    .venv/bin/python -m bench.import [--rows 1000000] [--small 250000]

Uses RELAIS_TEST_DATABASE_URL / RELAIS_TEST_REDIS_URL when set, else embedded servers, like
the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from core.connectors import runs
from core.connectors.ingest import build_mapper
from core.connectors.mapping import Mapping
from core.connectors.schemas import ConnectorCreate
from core.connectors.service import create_connector
from core.connectors.sync import BATCH_SIZE, execute_run
from core.db import Database
from core.events import service as event_service
from core.model.service import load_data_config
from core.plugin_config import service as plugin_config
from core.plugin_config.schemas import HqPluginUpdate, TenantPluginPut
from core.plugin_config.secrets import SecretBox
from plugins.builtin.connectors.file_import import FileImport, FileImportConfig
from plugins.manager import load_plugins
from tenants import service as tenants
from tenants.context import HqContext
from tenants.schemas import TenantCreate
from tests.services import create_database, destroy_database, settings_for, start_services

HQ = HqContext()
MAPPING = {
    "identifiers": {"email": "email", "ticketing_id": "account"},
    "traits": {"first_name": "first_name", "last_name": "last_name",
               "postal_code": "postal_code"},
    "event": {"type": "ticket_purchased", "id_column": "ticket",
              "occurred_at": {"column": "bought_at", "format": "%d/%m/%Y %H:%M"},
              "properties": {"product": "product", "amount": "amount",
                             "channel": "channel"}},
}
_PRODUCTS = [("Ticket 1 voyage", "1,90"), ("Carnet 10", "16,90"), ("Pass mois", "65,00")]
_CHANNELS = ["web", "app", "agency", "vending_machine"]


def write_export(path: Path, rows: int, seed: int = 7) -> int:
    """Streamed to disk: generating the file must not hold it in memory either."""
    rng = random.Random(seed)
    customers = max(1, rows * 2 // 3)
    with open(path, "w", encoding="utf-8") as out:
        out.write("email,account,first_name,last_name,postal_code,ticket,bought_at,"
                  "product,amount,channel\n")
        for i in range(rows):
            c = i if i < customers else rng.randrange(customers)
            product, amount = rng.choice(_PRODUCTS)
            out.write(f"client{c}@reseau-lyon.fr,TCL{c:08d},Prenom{c % 997},Nom{c % 4001},"
                      f"69{c % 10:01d}{c % 100:02d},T{i:09d},"
                      f"{1 + i % 28:02d}/10/2026 {i % 24:02d}:{i % 60:02d},"
                      f"{product},\"{amount}\",{rng.choice(_CHANNELS)}\n")
    return path.stat().st_size


class PeakRss:
    """Samples the resident set size of this process (Linux /proc)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self._page

    def __enter__(self) -> PeakRss:
        self.start = self.peak = self._rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


async def _tenant(db: Database, settings, plugins, box, tenant_id: str):
    tenant = await tenants.create_tenant(db, HQ, TenantCreate(
        id=tenant_id, name="Bench network", country="FR", timezone="Europe/Paris",
        default_locale="fr-FR", locales=["fr-FR"]))
    ctx = tenants.context_for(tenant, HQ.actor)
    await plugin_config.put_tenant_plugin(db, ctx, plugins, box, "file_import",
                                          TenantPluginPut(config={}))
    await create_connector(db, ctx, plugins, box, settings.base_url, ConnectorCreate(
        id="ticketing", type="file_import", name="Ticketing export", config={
            "mapping": MAPPING}))
    return ctx


class ServiceClock:
    """Time during which the customer-data ingestion services (identify, ingest_events)
    are at work, to tell the connector's own cost from theirs. A file import overlaps one
    batch's events with the next batch's profiles: overlapping calls count once."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._busy = 0
        self._since = 0.0
        self._real = {name: getattr(event_service, name)
                      for name in ("identify", "ingest_events")}

    def __enter__(self) -> ServiceClock:
        for name, real in self._real.items():
            setattr(event_service, name, self._timed(real))
        return self

    def _timed(self, real):
        async def timed(*args, **kwargs):
            if not self._busy:
                self._since = time.perf_counter()
            self._busy += 1
            try:
                return await real(*args, **kwargs)
            finally:
                self._busy -= 1
                if not self._busy:
                    self.seconds += time.perf_counter() - self._since
        return timed

    def __exit__(self, *exc: object) -> None:
        for name, real in self._real.items():
            setattr(event_service, name, real)


def _backend_cpu(database: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to `database` (Linux
    /proc, so a local server only; 0 when none is visible). The database is this run's
    own, so on a shared server too this is what the import costs PostgreSQL."""
    total, tag = 0, f" {database} ".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if tag not in f.read().replace(b"\0", b" "):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def _import(db, settings, plugins, box, ctx, path: Path
                  ) -> tuple[float, int, dict, float, tuple[float, float]]:
    """Seconds, peak RSS, the run's row, seconds inside the services, and the CPU
    seconds of this process and of the database's backends."""
    async with db.tenant_tx(ctx) as conn:
        run = await runs.create_run(conn, ctx, "ticketing", "path", path.name, str(path))
    database = urlsplit(settings.database_url).path.lstrip("/")
    with PeakRss() as rss, ServiceClock() as services:
        cpu, pg = time.process_time(), _backend_cpu(database)
        started = time.perf_counter()
        await execute_run(db, ctx, plugins, box, settings, run.id)
        took = time.perf_counter() - started
        cpu, pg = time.process_time() - cpu, _backend_cpu(database) - pg
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow("select status, rows_read, rows_accepted, rows_rejected, "
                                  "error from connector_runs where id = $1", run.id)
    return took, rss.peak, dict(row), services.seconds, (cpu, pg)


async def _map_only(db, ctx, path: Path) -> float:
    async with db.tenant_tx(ctx) as conn:
        data = await load_data_config(conn, ctx)
    import msgspec

    config = msgspec.convert({"mapping": MAPPING}, FileImportConfig)
    mapper = build_mapper(msgspec.convert(MAPPING, Mapping), data, ctx, "ticketing")
    started = time.perf_counter()
    for batch in FileImport().read(config, path, None, BATCH_SIZE):
        for record in batch.records:
            mapper.map(record.data)
    return time.perf_counter() - started


async def run(rows: int, small: int) -> dict[str, float]:
    services = await create_database(start_services())
    settings = settings_for(services)
    db = await Database.connect(settings)
    plugins = load_plugins(entry_points=False)
    box = SecretBox.from_settings(settings)
    try:
        await plugin_config.put_hq_plugin(db, HQ, plugins, box, "file_import",
                                          HqPluginUpdate(allowed=True))
        with tempfile.TemporaryDirectory() as tmp:
            small_file, large_file = Path(tmp) / "small.csv", Path(tmp) / "large.csv"
            small_size = write_export(small_file, small)
            large_size = write_export(large_file, rows, seed=11)
            print(f"files: {small:,} rows ({small_size / 1e6:.0f} MB), "
                  f"{rows:,} rows ({large_size / 1e6:.0f} MB)")
            ctx_small = await _tenant(db, settings, plugins, box, "bench-small")
            ctx_large = await _tenant(db, settings, plugins, box, "bench-large")
            mapped = await _map_only(db, ctx_large, large_file)
            print(f"baseline  read + map only        {rows:>9,} rows {mapped:7.1f} s "
                  f"{rows / mapped:>9,.0f} rows/s")
            results = {}
            for label, ctx, path, count in (("small", ctx_small, small_file, small),
                                            ("large", ctx_large, large_file, rows)):
                took, peak, row, inside, (cpu, pg) = await _import(db, settings, plugins,
                                                                   box, ctx, path)
                assert row["status"] == "succeeded", row
                assert row["rows_read"] == count and row["rows_rejected"] == 0, row
                results[label] = (took, peak)
                print(f"import    {label:<5} full pipeline    {count:>9,} rows {took:7.1f} s "
                      f"{count / took:>9,.0f} rows/s   peak RSS {peak / 2**20:6.0f} MiB   "
                      f"in identify + ingest_events: {inside / took:.0%}")
                print(f"          CPU µs/row: python {cpu / count * 1e6:.1f}"
                      + (f", postgres {pg / count * 1e6:.1f}" if pg else "")
                      + f" (2 cores: {(cpu + pg) / took:.2f} busy on average)")
            rate = rows / results["large"][0]
            growth = results["large"][1] / results["small"][1]
            print(f"import / read+map: {rate / (rows / mapped):.2f}   "
                  f"rows/s goal >= 10,000: {'met' if rate >= 10_000 else 'MISSED'} "
                  f"({rate:,.0f})")
            print(f"peak RSS large / small ({rows // small}x the rows): {growth:.2f} "
                  f"(flat is ~1.0)")
            return {"rows_per_s": rate, "memory_ratio": growth}
    finally:
        await db.close()
        await destroy_database(services)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=250_000)
    args = parser.parse_args()
    asyncio.run(run(args.rows, args.small))


if __name__ == "__main__":
    main()
