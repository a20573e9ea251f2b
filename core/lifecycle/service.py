"""Lifecycle evaluation: every customer gets exactly one stage of the effective canvas.

All stage rules compile into a single `case when rule1 then 'prospect' when rule2 ... end`
over the tenant's customers (same compiler as segments, so the event table is read once for
every rule); that SELECT may run in parallel. The changes then go back set-based: changed
customers get their new `customers.stage`, and each change becomes a `stage_changed` event
(from, to, version).
Full runs cover everybody (nightly: time alone moves people to inactive); incremental runs
cover customers with events after the previous run's watermark.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from core.db import Connection, Database, fetch_first
from core.errors import NotFound
from core.lifecycle.model import KIND, resolved_rules, stage_model
from core.lifecycle.schemas import RunMode, StageRun
from core.pagination import Page, check_limit, decode_cursor, page_of
from core.segments.compiler import Compiler
from core.segments.facts import SOURCE, insert_stage_facts
from core.segments.service import WORK_MEM
from core.segments.vocabulary import SYSTEM_EVENTS, tenant_vocabulary
from plugins.types import StageChange
from tenants.context import TenantContext
from tenants.overlay import effective_in

Notify = Callable[[Sequence[StageChange]], Awaitable[None]]
_RUN_COLUMNS = ("id, mode, canvas_version, status, started_at, finished_at, evaluated, "
                "changed, error")
NOTIFY_BATCH = 1000
# Customers with events (other than the platform's own facts) in an id range.
_NEW_ACTIVITY = ("select n.customer_id from events n where n.id > {} and n.id <= {} "
                 "and n.type <> all({})")


async def _start_run(db: Database, ctx: TenantContext, mode: RunMode) -> int:
    async with db.tenant_tx(ctx) as conn:
        return await conn.fetchval(
            """insert into lifecycle_runs (tenant_id, mode, canvas_version)
               values ($1, $2, 0) returning id""", ctx.tenant_id, mode)


async def _assign(conn: Connection, ctx: TenantContext, run_id: int, mode: RunMode,
                  now: datetime) -> tuple[int, int, int, int]:
    """(canvas version, evaluated, changed, first event id written) inside the run's tx."""
    effective = await effective_in(conn, ctx.tenant_id, KIND)
    model = stage_model(effective)
    vocab = await tenant_vocabulary(conn, ctx)
    rules = resolved_rules(model, effective.parameters, vocab)
    watermark = await conn.fetchval("select coalesce(max(id), 0) from events")
    previous = await conn.fetchval(
        "select max(event_watermark) from lifecycle_runs where status = 'done'")
    compiler = Compiler(vocab, now)
    branches = " ".join(f"when {compiler.condition(node)} then {compiler.bind(name, 'text')}"
                        for name, node in rules)
    only = None
    if mode == "incremental" and previous is not None:
        only = _NEW_ACTIVITY.format(compiler.bind(previous, "bigint"),
                                    compiler.bind(watermark, "bigint"),
                                    compiler.bind(sorted(SYSTEM_EVENTS), "text[]"))
    compiled = compiler.finish("true", only=only)
    assigned, args = compiled.select(
        f"c.id as customer_id, c.stage as old_stage, (case {branches} end) as new_stage")
    await conn.execute(WORK_MEM)
    # A query that writes to a table never runs in parallel, but CREATE TABLE AS may: the
    # stages are computed into a temporary table, then only the changes are written back.
    await conn.execute(
        f"""create temp table lifecycle_changes on commit drop as
            select * from ({assigned}) x where old_stage is distinct from new_stage""", *args)
    await conn.execute("analyze lifecycle_changes")  # temp tables get no autovacuum stats
    changed = await conn.fetchval("select count(*) from lifecycle_changes")
    count = "select count(*) from customers c where merged_into is null and erased_at is null"
    if only is None:
        evaluated = (await fetch_first(conn, count))[0]
    else:
        evaluated = (await fetch_first(
            conn, count + " and c.id in (" + _NEW_ACTIVITY.format("$1", "$2", "$3") + ")",
            previous, watermark, sorted(SYSTEM_EVENTS)))[0]
    before = await conn.fetchval("select coalesce(max(id), 0) from events")
    if changed:
        await conn.execute("""update customers c set stage = x.new_stage
                              from lifecycle_changes x where c.id = x.customer_id""")
        await conn.execute(insert_stage_facts("lifecycle_changes", "$1::bigint::text",
                                              "$2::int", "$3::timestamptz"),
                           run_id, effective.version, now)
    await conn.execute(
        """update lifecycle_runs set status = 'done', finished_at = now(), canvas_version = $2,
               evaluated = $3, changed = $4, event_watermark = $5 where id = $1""",
        run_id, effective.version, evaluated, changed, watermark)
    return effective.version, evaluated, changed, before


async def evaluate(db: Database, ctx: TenantContext, *, mode: RunMode = "full",
                   now: datetime | None = None, notify: Notify | None = None) -> StageRun:
    """Assign stages; with `notify` (the plugin hook `stage changed`), the changes are
    passed on in batches once committed."""
    now = now or datetime.now(UTC)
    run_id = await _start_run(db, ctx, mode)
    try:
        async with db.tenant_tx(ctx) as conn:
            # One evaluation per tenant at a time: a second waits, then sees the first's
            # stages and has little left to change.
            await conn.execute("select pg_advisory_xact_lock(hashtext('lifecycle:' || $1))",
                               ctx.tenant_id)
            _, _, changed, before = await _assign(conn, ctx, run_id, mode, now)
    except Exception as exc:
        async with db.tenant_tx(ctx) as conn:
            await conn.execute(
                """update lifecycle_runs set status = 'failed', finished_at = now(),
                       error = $2 where id = $1""", run_id, str(exc)[:1000])
        raise
    if notify is not None and changed:
        await _notify(db, ctx, run_id, before, notify)
    return await get_run(db, ctx, run_id)


async def _notify(db: Database, ctx: TenantContext, run_id: int, before: int,
                  notify: Notify) -> None:
    after = before
    while True:
        async with db.tenant_tx(ctx) as conn:
            rows = await conn.fetch(
                """select id, customer_id, occurred_at, properties from events
                   where id > $1 and type = 'stage_changed' and source = $2
                     and message_id like $3 order by id limit $4""",
                after, SOURCE, f"stage_changed:{run_id}:%", NOTIFY_BATCH)
        if not rows:
            return
        await notify([StageChange(customer_id=r["customer_id"], stage=r["properties"]["to"],
                                  previous_stage=r["properties"]["from"], at=r["occurred_at"])
                      for r in rows])
        after = rows[-1]["id"]


async def get_run(db: Database, ctx: TenantContext, run_id: int) -> StageRun:
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(f"select {_RUN_COLUMNS} from lifecycle_runs where id = $1",
                                  run_id)
    if row is None:
        raise NotFound(f"run {run_id} not found")
    return StageRun(**dict(row))


async def list_runs(db: Database, ctx: TenantContext, *, cursor: str | None,
                    limit: int) -> Page[StageRun]:
    check_limit(limit)
    before = decode_cursor(cursor, int)
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select {_RUN_COLUMNS} from lifecycle_runs
                where ($1::bigint is null or id < $1) order by id desc limit $2""",
            before, limit + 1)
    return page_of([StageRun(**dict(r)) for r in rows], limit, lambda r: r.id)


async def last_run_id(db: Database, ctx: TenantContext) -> int:
    async with db.tenant_tx(ctx) as conn:
        return await conn.fetchval("select coalesce(max(id), 0) from lifecycle_runs")
