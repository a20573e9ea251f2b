"""Imports: batches too large for one request, processed by an arq job.

The payload is stored in `ingest_jobs` before the job is queued, and the job records its
progress after every chunk, so a worker restart resumes where it stopped; a chunk that was
ingested but not yet recorded is simply ingested again, and its items come back as
duplicates (events) or idempotent upserts (identify). Nothing is lost or doubled.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from arq import ArqRedis

from core.audit.service import record
from core.db import Database
from core.errors import InvalidInput, NotFound, PayloadTooLarge
from core.events.prepare import decode_items
from core.events.reactions import Reactions
from core.events.schemas import EventIn, IdentifyIn, ImportCreate, ImportJob, ItemResult
from core.jobs.context import enqueue
from core.settings import Settings
from tenants.context import TenantContext

MAX_IMPORT_ITEMS = 100_000
MAX_IMPORT_BYTES = 64 * 1_048_576
CHUNK = 1000
_COLUMNS = "id, kind, source, status, total, processed, created_at, updated_at, error"


async def create_import(db: Database, arq: ArqRedis, settings: Settings, ctx: TenantContext,
                        data: ImportCreate) -> ImportJob:
    if len(data.items) > MAX_IMPORT_ITEMS:
        raise PayloadTooLarge(f"an import holds at most {MAX_IMPORT_ITEMS} items", field="items")
    if not data.items:
        raise InvalidInput("an import needs at least one item", field="items")
    import_id = uuid.uuid4()
    items = msgspec.json.encode(data.items)
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            f"""insert into ingest_jobs (tenant_id, id, kind, source, items, total)
                values ($1, $2, $3, $4, $5::text::jsonb, $6) returning {_COLUMNS}""",
            ctx.tenant_id, import_id, data.kind, data.source, items.decode(), len(data.items))
        await record(conn, ctx, "import.created", "import", str(import_id),
                     {"kind": data.kind, "items": len(data.items), "source": data.source})
    await enqueue(arq, settings, "run_import", tenant_id=ctx.tenant_id, key=str(import_id),
                  import_id=str(import_id))
    return ImportJob(**dict(row))


async def get_import(db: Database, ctx: TenantContext, import_id: uuid.UUID) -> ImportJob:
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            f"select {_COLUMNS}, results::text as results from ingest_jobs where id = $1",
            import_id)
    if row is None:
        raise NotFound("no import with this id")
    values = dict(row)
    results = msgspec.json.decode(values.pop("results") or "[]", type=list[ItemResult])
    summary: dict[str, int] = {}
    for r in results:
        summary[r.status] = summary.get(r.status, 0) + 1
    return ImportJob(**values, results=results, summary=summary)


async def process_import(db: Database, ctx: TenantContext, import_id: uuid.UUID,
                         reactions: Reactions | None = None) -> int:
    """Run (or resume) an import; returns the number of items processed by this call.
    `reactions`: the plugins the ingestion services tell, chunk by chunk."""
    from core.events.service import identify, ingest_events

    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            """update ingest_jobs set status = 'running', updated_at = now()
               where id = $1 and status in ('queued', 'running')
               returning kind, source, processed, items::text as items""", import_id)
    if row is None:
        return 0  # done, failed or unknown: nothing to do (a re-run is harmless)
    raws = msgspec.json.decode(row["items"], type=list[msgspec.Raw])
    kind, source, start = row["kind"], row["source"], row["processed"]
    done = 0
    for offset in range(start, len(raws), CHUNK):
        chunk = raws[offset:offset + CHUNK]
        if kind == "events":
            results = await ingest_events(db, ctx, decode_items(chunk, EventIn), source=source,
                                          reactions=reactions)
        else:
            results = await identify(db, ctx, decode_items(chunk, IdentifyIn), source=source,
                                     reactions=reactions)
        shifted: list[Any] = [msgspec.structs.replace(r, index=r.index + offset, field=(
            r.field.replace(f"items[{r.index}]", f"items[{r.index + offset}]", 1)
            if r.field else None)) for r in results]
        async with db.tenant_tx(ctx) as conn:
            await conn.execute(
                """update ingest_jobs set processed = $2, updated_at = now(),
                       results = coalesce(results, '[]'::jsonb) || $3::text::jsonb
                   where id = $1 and processed = $4""",
                import_id, offset + len(chunk), msgspec.json.encode(shifted).decode(), offset)
        done += len(chunk)
    async with db.tenant_tx(ctx) as conn:
        await conn.execute(
            """update ingest_jobs set status = 'done', items = '[]', updated_at = now()
               where id = $1""", import_id)
        await record(conn, ctx, "import.done", "import", str(import_id), {"items": len(raws)})
    return done


async def fail_import(db: Database, ctx: TenantContext, import_id: uuid.UUID, error: str) -> None:
    async with db.tenant_tx(ctx) as conn:
        await conn.execute(
            """update ingest_jobs set status = 'failed', error = $2, updated_at = now()
               where id = $1 and status <> 'done'""", import_id, error[:2000])


async def stalled_imports(db: Database, ctx: TenantContext) -> list[uuid.UUID]:
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            """select id from ingest_jobs where status in ('queued', 'running')
               and updated_at < now() - interval '5 minutes'""")
    return [r["id"] for r in rows]
