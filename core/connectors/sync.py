"""Running syncs: start a run (upload, drop-directory path, pull now, schedule), execute it
batch by batch with checkpoints, and take inbound webhook deliveries.

A run executes in an arq job (`core.connectors.jobs.run_connector`). Each batch is read,
mapped, ingested through the customer-data services, then its counters, rejects and
checkpoint commit together; a restarted job resumes after the last committed batch. Pull
connectors also move the connector's own checkpoint, where the next sync starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from core.audit.service import record
from core.connectors import files, runs
from core.connectors.ingest import Identified, Ingester, MappedBatch, build_mapper
from core.connectors.schemas import DeliveryItem, DeliveryResult, Run, RunStart
from core.connectors.service import Loaded, load
from core.db import Database
from core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RelaisError,
    Unauthenticated,
)
from core.model.service import load_data_config
from core.plugin_config.secrets import SecretBox
from core.plugin_config.service import enabled_configs
from core.settings import Settings
from plugins.manager import PluginManager
from tenants.context import TenantContext

log = logging.getLogger("relais.connectors")
BATCH_SIZE = 5000
STALE_AFTER = timedelta(minutes=10)
MAX_LISTED_DEFAULT = 10_000


class Enqueue:
    """Callable that queues the job of a run (the API gives its arq pool, jobs theirs)."""

    def __init__(self, arq: Any, settings: Settings) -> None:
        self.arq, self.settings = arq, settings

    async def __call__(self, tenant_id: str, run_id: str, retry: str = "") -> None:
        """`retry` distinguishes a re-queued job from the first one (arq keeps job ids)."""
        from core.jobs.context import enqueue

        key = f"{run_id}:{retry}" if retry else run_id
        await enqueue(self.arq, self.settings, "run_connector", tenant_id=tenant_id, key=key,
                      run_id=run_id)


def _max_listed(loaded: Loaded) -> int:
    return getattr(loaded.plugin_config, "max_rejects_listed", MAX_LISTED_DEFAULT)


# -- starting runs ---------------------------------------------------------------------

async def start_run(db: Database, ctx: TenantContext, plugins: PluginManager, box: SecretBox,
                    settings: Settings, enqueue: Enqueue, connector_id: str,
                    data: RunStart) -> Run:
    async with db.tenant_tx(ctx) as conn:
        loaded = await load(conn, ctx, plugins, box, connector_id)
        mode = loaded.impl.mode
        if mode == "push":
            raise Conflict("a webhook connector runs when its source posts to "
                           f"/hooks/{ctx.tenant_id}/{connector_id}", field="connector_id")
        if mode == "file":
            if not data.path:
                raise InvalidInput("give the path of a file in the tenant's import "
                                   "directory, or upload the file", field="path")
            path = files.inbox_path(settings, ctx.tenant_id, data.path)
            run = await runs.create_run(conn, ctx, connector_id, "path", data.path, str(path))
        else:
            if data.path:
                raise InvalidInput("pull connectors read from their source, not a file",
                                   field="path")
            if await runs.open_run(conn, connector_id) is not None:
                raise Conflict("a sync of this connector is already queued or running",
                               field="connector_id")
            if data.full:
                await conn.execute("update connectors set checkpoint = null where id = $1",
                                   connector_id)
            run = await runs.create_run(conn, ctx, connector_id, "manual",
                                        "full sync" if data.full else "incremental sync")
        await record(conn, ctx, "connector.run_started", "connector_run", run.id,
                     {"connector_id": connector_id, "trigger": run.trigger,
                      "source": run.source})
    await enqueue(ctx.tenant_id, run.id)
    return run


async def upload(db: Database, ctx: TenantContext, plugins: PluginManager, box: SecretBox,
                 settings: Settings, enqueue: Enqueue, connector_id: str,
                 filename: str | None, content_type: str | None,
                 chunks: AsyncIterator[bytes]) -> Run:
    """Store an uploaded export (streamed to disk) and queue its import."""
    async with db.tenant_tx(ctx) as conn:
        loaded = await load(conn, ctx, plugins, box, connector_id)
    if loaded.impl.mode != "file":
        raise Conflict(f"connector {connector_id!r} does not import files",
                       field="connector_id")
    run_id = runs.new_run_id()
    max_bytes = getattr(loaded.plugin_config, "max_file_mb", 4096) << 20
    path, size = await files.save_upload(settings, ctx.tenant_id, run_id,
                                         files.suffix_for(filename, content_type), chunks,
                                         max_bytes)
    try:
        async with db.tenant_tx(ctx) as conn:
            run = await runs.create_run(conn, ctx, connector_id, "upload",
                                        filename or path.name, str(path), run_id=run_id)
            await record(conn, ctx, "connector.file_uploaded", "connector_run", run.id,
                         {"connector_id": connector_id, "file": filename, "bytes": size})
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    await enqueue(ctx.tenant_id, run.id)
    return run


# -- executing runs --------------------------------------------------------------------

async def execute_run(db: Database, ctx: TenantContext, plugins: PluginManager,
                      box: SecretBox, settings: Settings, run_id: str, *,
                      stale_after: timedelta = STALE_AFTER,
                      http: httpx.AsyncClient | None = None) -> bool:
    """Run (or resume) a sync; False when there was nothing to do."""
    async with db.tenant_tx(ctx) as conn:
        claimed = await runs.claim(conn, run_id, datetime.now(UTC) - stale_after)
    if claimed is None:
        return False
    try:
        async with db.tenant_tx(ctx) as conn:
            loaded = await load(conn, ctx, plugins, box, claimed["connector_id"])
            data = await load_data_config(conn, ctx)
            enabled = list(await enabled_configs(conn, ctx, plugins, box))
        mapper = build_mapper(loaded.config.mapping, data, ctx, loaded.source)
        ingester = Ingester(db, ctx, mapper, loaded.source, plugins, enabled, config=data)
        if loaded.impl.mode == "file":
            await _read_file(db, ctx, loaded, ingester, claimed)
        elif loaded.impl.mode == "pull":
            await _pull(db, ctx, loaded, ingester, run_id, http)
        else:
            raise Conflict("webhook connectors have no runs to execute")
    except Exception as exc:
        reason = exc.detail if isinstance(exc, RelaisError) else f"{type(exc).__name__}: {exc}"
        log.warning("connector run failed", extra={"tenant": ctx.tenant_id, "run": run_id,
                                                   "error": reason})
        async with db.tenant_tx(ctx) as conn:
            await runs.finish(conn, run_id, error=reason)
            await _reschedule(conn, claimed["connector_id"])
        return True
    async with db.tenant_tx(ctx) as conn:
        await runs.finish(conn, run_id)
        await _reschedule(conn, claimed["connector_id"])
    if claimed["trigger"] == "upload":
        files.remove_upload(settings, ctx.tenant_id, claimed["file_path"])
    return True


async def _read_file(db: Database, ctx: TenantContext, loaded: Loaded, ingester: Ingester,
                     claimed: Any) -> None:
    path = Path(claimed["file_path"] or "")
    if not path.is_file():  # noqa: ASYNC240 (one stat call)
        raise NotFound("the file of this run is gone (uploads are kept until the run "
                       "succeeds)")
    # Three batches in flight, one per step, so Python works while PostgreSQL does: the
    # next batch is read and mapped, the current one identified, the previous one stored
    # (events, consents, then its outcome and checkpoint). Profiles are still identified
    # batch after batch (the next batch's once the previous batch's committed), and
    # batches commit their outcomes and checkpoints in file order.
    batches = loaded.impl.read(loaded.config, path, claimed["checkpoint"], BATCH_SIZE)

    async def read_and_map() -> tuple[Any, float | None, MappedBatch] | None:
        batch = next(batches, None)  # its source records are dropped once mapped
        if batch is None:
            return None
        return batch.checkpoint, batch.progress, await ingester.map_batch(batch.records)

    mapping: asyncio.Task[tuple[Any, float | None, MappedBatch] | None] | None = None
    storing: asyncio.Task[None] | None = None
    try:
        mapping = asyncio.create_task(read_and_map())
        while (item := await mapping) is not None:
            checkpoint, progress, mapped = item
            mapping = asyncio.create_task(read_and_map())
            identified = await ingester.identify_batch(mapped)
            if storing is not None:
                await storing
            storing = asyncio.create_task(_store(db, ctx, loaded, ingester, claimed["id"],
                                                 checkpoint, progress, identified))
        if storing is not None:
            await storing
    except BaseException:
        # The batch being stored still commits its outcome and checkpoint (where a retry
        # resumes, as if the batches had run one after the other); the next is dropped.
        if mapping is not None:
            mapping.cancel()
        for task in (mapping, storing):
            if task is not None:
                await asyncio.wait([task])
                if not task.cancelled():
                    task.exception()  # retrieved: the first failure is the one raised
        raise


async def _store(db: Database, ctx: TenantContext, loaded: Loaded, ingester: Ingester,
                 run_id: str, checkpoint: Any, progress: float | None,
                 identified: Identified) -> None:
    outcome = await ingester.store_batch(identified)
    async with db.tenant_tx(ctx) as conn:
        await runs.save_batch(conn, ctx, run_id, read=outcome.read,
                              accepted=outcome.accepted, rejects=outcome.rejects,
                              checkpoint=checkpoint, progress=progress,
                              max_listed=_max_listed(loaded))


async def _pull(db: Database, ctx: TenantContext, loaded: Loaded, ingester: Ingester,
                run_id: str, http: httpx.AsyncClient | None) -> None:
    async with db.tenant_tx(ctx) as conn:
        checkpoint = await conn.fetchval("select checkpoint from connectors where id = $1",
                                         loaded.id)
    client = http or httpx.AsyncClient(follow_redirects=False,
                                       headers={"User-Agent": "Relais/0.1"})
    try:
        async for batch in loaded.impl.pages(loaded.config, loaded.plugin_config, checkpoint,
                                             client):
            outcome = await ingester.ingest(batch.records)
            async with db.tenant_tx(ctx) as conn:
                await runs.save_batch(conn, ctx, run_id, read=outcome.read,
                                      accepted=outcome.accepted, rejects=outcome.rejects,
                                      checkpoint=batch.checkpoint, progress=batch.progress,
                                      max_listed=_max_listed(loaded))
                await conn.execute("update connectors set checkpoint = $2 where id = $1",
                                   loaded.id, batch.checkpoint)
    finally:
        if http is None:
            await client.aclose()


async def _reschedule(conn: Any, connector_id: str) -> None:
    await conn.execute(
        """update connectors set next_run_at = now() + make_interval(mins => schedule_minutes)
           where id = $1 and schedule_minutes is not null""", connector_id)


# -- inbound webhooks ------------------------------------------------------------------

def delivery_run_id(connector_id: str, now: datetime) -> str:
    """Deliveries of one connector are counted in one run per hour."""
    return f"wh-{connector_id}-{now:%Y%m%d%H}"


async def receive_webhook(db: Database, ctx: TenantContext, plugins: PluginManager,
                          box: SecretBox, connector_id: str, body: bytes,
                          headers: Mapping[str, str]) -> DeliveryResult:
    """Verify, map and ingest one delivery. Unknown connector and wrong signature answer
    alike, so the URL reveals nothing without the secret."""
    try:
        async with db.tenant_tx(ctx) as conn:
            loaded = await load(conn, ctx, plugins, box, connector_id)
            data = await load_data_config(conn, ctx)
            enabled = list(await enabled_configs(conn, ctx, plugins, box))
    except RelaisError:
        raise Unauthenticated("unknown connector or bad signature") from None
    impl = loaded.impl
    if impl.mode != "push" or loaded.row["status"] != "active" or not impl.verify(
            loaded.config, body, headers, time.time()):
        raise Unauthenticated("unknown connector or bad signature")
    limit = getattr(loaded.plugin_config, "max_body_kb", 1024) << 10
    if len(body) > limit:
        raise PayloadTooLarge(f"delivery larger than {limit >> 10} KB")
    records = impl.parse(loaded.config, body, headers)
    most = getattr(loaded.plugin_config, "max_items_per_delivery", 1000)
    if len(records) > most:
        raise InvalidInput(f"a delivery may carry at most {most} items", field="body")
    now = datetime.now(UTC)
    run_id = delivery_run_id(connector_id, now)
    async with db.tenant_tx(ctx) as conn:
        await conn.execute(
            """insert into connector_runs (tenant_id, id, connector_id, trigger, status, source,
                                           started_at, heartbeat_at)
               values ($1, $2, $3, 'webhook', 'running', 'webhook deliveries', now(), now())
               on conflict (tenant_id, id) do nothing""", ctx.tenant_id, run_id, connector_id)
        first = await runs.reserve_lines(conn, run_id, len(records))
    # Lines count across the run's deliveries, so rejects of two deliveries never collide.
    numbered = [r._replace(line=first + i) for i, r in enumerate(records)]
    mapper = build_mapper(loaded.config.mapping, data, ctx, loaded.source)
    outcome = await Ingester(db, ctx, mapper, loaded.source, plugins, enabled).ingest(numbered)
    async with db.tenant_tx(ctx) as conn:
        await runs.count_delivery(conn, ctx, run_id, accepted=outcome.accepted,
                                  rejects=outcome.rejects, max_listed=_max_listed(loaded))
    rejected = {r.line: r for r in outcome.rejects}
    items = [DeliveryItem(line=r.line - first + 1, status="rejected",
                          reason=rejected[r.line].reason, field=rejected[r.line].field)
             if r.line in rejected else DeliveryItem(line=r.line - first + 1, status="accepted")
             for r in numbered]
    return DeliveryResult(run_id=run_id, received=len(records), accepted=outcome.accepted,
                          rejected=outcome.rejected, items=items)
