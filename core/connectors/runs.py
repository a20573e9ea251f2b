"""Sync runs: one row per run with status, counters, progress, checkpoint and an error
sample; every rejected row is listed in `connector_rejects` (up to the plugin's limit).

Counters, rejects and the checkpoint of a batch commit together, so after a crash a run
resumes from its checkpoint with counters that match exactly what was ingested.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from core.connectors.schemas import Reject, Run, Trigger
from core.db import Connection, Database
from core.errors import NotFound
from core.pagination import Page, check_limit, decode_cursor, page_of
from tenants.context import TenantContext

SAMPLE_SIZE = 20
_COLS = ("id, connector_id, trigger, status, source, rows_read, rows_accepted, rows_rejected, "
         "progress, error, error_sample, attempts, created_at, started_at, heartbeat_at, "
         "finished_at")


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex[:20]}"


def _run(row: asyncpg.Record) -> Run:
    return msgspec.convert(dict(row), Run)


async def create_run(conn: Connection, ctx: TenantContext, connector_id: str,
                     trigger: Trigger, source: str, file_path: str | None = None,
                     run_id: str | None = None) -> Run:
    row = await conn.fetchrow(
        f"""insert into connector_runs (tenant_id, id, connector_id, trigger, source,
                                        file_path)
            values ($1, $2, $3, $4, $5, $6) returning {_COLS}""",
        ctx.tenant_id, run_id or new_run_id(), connector_id, trigger, source, file_path)
    return _run(row)


async def open_run(conn: Connection, connector_id: str) -> asyncpg.Record | None:
    """The connector's unfinished run, if any (one sync at a time per connector)."""
    return await conn.fetchrow(
        f"""select {_COLS}, checkpoint from connector_runs
            where connector_id = $1 and status in ('queued', 'running')
              and trigger <> 'webhook'
            order by created_at limit 1""", connector_id)


async def claim(conn: Connection, run_id: str, stale_before: datetime) -> asyncpg.Record | None:
    """Mark the run running; None when it finished (a duplicate job is a no-op) or another
    worker is on it (heartbeat newer than `stale_before`). A run whose worker died is
    taken over once its heartbeat is stale, and resumes from its checkpoint."""
    return await conn.fetchrow(
        f"""update connector_runs set status = 'running', attempts = attempts + 1,
                   started_at = coalesce(started_at, now()), heartbeat_at = now()
            where id = $1 and (status = 'queued'
                               or (status = 'running' and heartbeat_at < $2))
            returning {_COLS}, checkpoint, file_path""", run_id, stale_before)


async def save_batch(conn: Connection, ctx: TenantContext, run_id: str, *, read: int,
                     accepted: int, rejects: Sequence[Reject], checkpoint: Any,
                     progress: float | None, max_listed: int) -> None:
    """Counters, rejects (line, field, reason) and checkpoint of one ingested batch."""
    row = await conn.fetchrow(
        """update connector_runs set rows_read = rows_read + $2,
                  rows_accepted = rows_accepted + $3, rows_rejected = rows_rejected + $4,
                  checkpoint = coalesce($5, checkpoint), progress = coalesce($6, progress),
                  heartbeat_at = now(),
                  error_sample = case when jsonb_array_length(error_sample) >= $7
                      then error_sample
                      else (select coalesce(jsonb_agg(e), '[]') from (
                              select e from jsonb_array_elements(error_sample || $8::jsonb) e
                              limit $7) sample) end
            where id = $1 returning rows_rejected""",
        run_id, read, accepted, len(rejects), checkpoint, progress, SAMPLE_SIZE,
        msgspec.to_builtins(list(rejects[:SAMPLE_SIZE])))
    already = row["rows_rejected"] - len(rejects)
    room = max(0, max_listed - already)
    if rejects and room:
        listed = rejects[:room]
        await conn.execute(
            """insert into connector_rejects (tenant_id, run_id, line, field, reason)
               select $1, $2, * from unnest($3::bigint[], $4::text[], $5::text[])
               on conflict do nothing""",
            ctx.tenant_id, run_id, [r.line for r in listed], [r.field for r in listed],
            [r.reason[:1000] for r in listed])


async def reserve_lines(conn: Connection, run_id: str, count: int) -> int:
    """For runs fed by deliveries (webhooks): the first line number of `count` new ones."""
    return await conn.fetchval(
        """update connector_runs set rows_read = rows_read + $2, heartbeat_at = now()
           where id = $1 returning rows_read - $2 + 1""", run_id, count)


async def count_delivery(conn: Connection, ctx: TenantContext, run_id: str, *, accepted: int,
                         rejects: Sequence[Reject], max_listed: int) -> None:
    await save_batch(conn, ctx, run_id, read=0, accepted=accepted, rejects=rejects,
                     checkpoint=None, progress=None, max_listed=max_listed)


async def finish(conn: Connection, run_id: str, *, error: str | None = None) -> None:
    await conn.execute(
        """update connector_runs set status = $2, error = $3, finished_at = now(),
                  heartbeat_at = now(), progress = case when $2 = 'succeeded' then 1
                                                        else progress end
           where id = $1""",
        run_id, "failed" if error else "succeeded", error[:2000] if error else None)


async def stale_runs(conn: Connection, older_than: datetime) -> list[asyncpg.Record]:
    """Runs whose worker stopped reporting (crashed), or whose job never started (Redis was
    down when it was queued): the scheduler queues them again. A duplicate job is harmless:
    `claim` lets only one of them run."""
    return await conn.fetch(
        """select id, attempts from connector_runs
           where trigger <> 'webhook'
             and ((status = 'running' and heartbeat_at < $1)
                  or (status = 'queued' and created_at < $1))""",
        older_than)


# -- reads -----------------------------------------------------------------------------

async def list_runs(db: Database, ctx: TenantContext, connector_id: str, *,
                    cursor: str | None, limit: int) -> Page[Run]:
    check_limit(limit)
    after = decode_cursor(cursor, tuple[datetime, str])
    async with db.tenant_tx(ctx) as conn:
        if not await conn.fetchval("select 1 from connectors where id = $1", connector_id):
            raise NotFound(f"connector {connector_id!r} not found")
        rows = await conn.fetch(
            f"""select {_COLS} from connector_runs where connector_id = $1
                  and ($2::timestamptz is null or (created_at, id) < ($2, $3))
                order by created_at desc, id desc limit $4""",
            connector_id, after[0] if after else None, after[1] if after else "", limit + 1)
    return page_of([_run(r) for r in rows], limit, lambda r: (r.created_at, r.id))


async def get_run(db: Database, ctx: TenantContext, connector_id: str, run_id: str) -> Run:
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            f"select {_COLS} from connector_runs where connector_id = $1 and id = $2",
            connector_id, run_id)
    if row is None:
        raise NotFound(f"run {run_id!r} not found")
    return _run(row)


async def list_rejects(db: Database, ctx: TenantContext, connector_id: str, run_id: str, *,
                       cursor: str | None, limit: int) -> Page[Reject]:
    check_limit(limit)
    after = decode_cursor(cursor, int) or 0
    async with db.tenant_tx(ctx) as conn:
        if not await conn.fetchval(
                "select 1 from connector_runs where connector_id = $1 and id = $2",
                connector_id, run_id):
            raise NotFound(f"run {run_id!r} not found")
        rows = await conn.fetch(
            """select line, reason, field from connector_rejects
               where run_id = $1 and line > $2 order by line limit $3""",
            run_id, after, limit + 1)
    return page_of([Reject(**dict(r)) for r in rows], limit, lambda r: r.line)
