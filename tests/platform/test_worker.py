"""The arq worker runs real jobs against the same Redis and database."""

from __future__ import annotations

from core.audit.service import list_tenant_entries
from core.jobs.context import enqueue
from core.jobs.worker import build_worker
from tenants.context import SYSTEM
from tenants.service import context_for


async def test_audit_retention_job_runs_in_the_worker_and_is_deduplicated(
        db, services, settings, make_tenant, make_key, redis):
    import asyncpg
    from arq import create_pool
    from arq.connections import RedisSettings

    tenant = await make_tenant("jobs")
    await make_key(tenant.id)  # writes one audit entry
    ctx = context_for(tenant, SYSTEM)
    # The runtime role cannot rewrite the audit log: age an entry as the owner.
    owner = await asyncpg.connect(services.owner_dsn)
    async with owner.transaction():
        await owner.execute("select set_config('relais.tenant_id', $1, true)", tenant.id)
        await owner.execute("update audit_log set at = now() - interval '400 days'")
    await owner.close()
    async with db.tenant_tx(ctx) as conn:
        await conn.execute("""insert into audit_log (tenant_id, actor_kind, actor_id, action,
                              target_type) values ($1, 'system', 't', 'recent', 'x')""",
                           tenant.id)
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        first = await enqueue(pool, settings, "purge_audit_log", tenant_id=tenant.id, key="d1")
        again = await enqueue(pool, settings, "purge_audit_log", tenant_id=tenant.id, key="d1")
        assert first is not None and again is None  # deterministic id: enqueued once
        worker = build_worker(settings, burst=True, poll_delay=0.05, cron_jobs=[])
        await worker.main()
        assert worker.jobs_failed == 0
        assert await first.result(timeout=5) == 1
        await worker.close()
    finally:
        await pool.aclose()
    remaining = await list_tenant_entries(db, ctx, cursor=None, limit=10)
    assert [e.action for e in remaining.items] == ["recent"]
