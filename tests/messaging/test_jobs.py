"""The minute cron finds due work (planned or stranded by a dead worker) and the worker
dispatches it."""

from __future__ import annotations

import uuid

from arq import create_pool
from arq.connections import RedisSettings

from core.jobs.worker import build_worker
from core.messaging.jobs import schedule_dispatch
from core.messaging.schemas import PlannedMessage
from core.messaging.service import enqueue_planned
from tests.templates.factories import hq_template


async def test_cron_schedules_due_channels_and_the_worker_sends(env, sink, db, settings):
    await env.enable_email(sink)
    template_id = await hq_template(db, pilots=[env.tenant.id], category="transactional",
                                    purpose="transactional")
    customer = uuid.UUID(await env.customer(first_name="Cron"))
    planned = await enqueue_planned(env.db, env.ctx, [PlannedMessage(
        customer_id=customer, channel="email", category="transactional",
        purpose="transactional", source_type="journey", source_id="cron", step="s1",
        template_id=template_id, data={"line": "T1"})])
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url),
                             default_queue_name=settings.queue_name)
    try:
        jobs = await schedule_dispatch({"db": db, "redis": pool, "settings": settings})
        assert jobs >= 1
        worker = build_worker(settings, burst=True, poll_delay=0.05)
        try:
            await worker.main()
        finally:
            await worker.close()
    finally:
        await pool.aclose()
    message = await env.message(planned.ids[0])
    assert message["status"] == "sent" and len(sink.messages) == 1
