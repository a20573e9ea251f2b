"""A worker killed mid-batch never causes a second send: what it had started is given up
as `outcome_unknown`, what it had not started goes out once, from another worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from core.messaging.schemas import PlannedMessage
from core.messaging.service import enqueue_planned
from tests.templates.factories import hq_template

ROOT = Path(__file__).resolve().parents[2]


async def test_no_double_send_when_the_worker_dies_mid_batch(env, sink, db, settings):
    await env.enable_email(sink)
    await env.policy(email_per_second=40)  # slow enough to kill it in the middle
    template_id = await hq_template(db, pilots=[env.tenant.id], category="transactional",
                                    purpose="transactional")
    customers = [await env.customer(first_name=f"C{i}", email=f"crash{i}@reseau-lyon.fr")
                 for i in range(100)]
    planned = await enqueue_planned(env.db, env.ctx, [PlannedMessage(
        customer_id=c, channel="email", category="transactional", purpose="transactional",
        source_type="journey", source_id="crash", step="s1", template_id=template_id,
        data={"line": "T1"}) for c in customers])
    assert len(planned.inserted) == 100

    spec = {"settings": {"database_url": settings.database_url, "redis_url": settings.redis_url,
                         "redis_prefix": settings.redis_prefix,
                         "secret_key": settings.secret_key},
            "tenant_id": env.tenant.id, "channel": "email", "batch_size": 40,
            "flush_every": 10}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.messaging.crash_worker", json.dumps(spec), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(600):
            if len(sink.messages) >= 50:
                break
            await asyncio.sleep(0.02)
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    killed_at = len(sink.messages)
    assert 50 <= killed_at < 100, killed_at

    # The dead worker's lease runs out; the next dispatch recovers and finishes.
    async with env.db.tenant_tx(env.ctx) as conn:
        held = await conn.fetchval("select count(*) from messages where status = 'sending'")
        await conn.execute("update messages set lease_until = now() - interval '1 second' "
                           "where status = 'sending'")
    assert held > 0
    await env.policy(email_per_second=1000)
    report = await env.dispatch("email")
    assert report.in_doubt + report.requeued == held

    received = Counter(rcpt for mail in sink.messages for rcpt in mail.rcpt_tos)
    assert max(received.values()) == 1, "a message went out twice"
    async with env.db.tenant_tx(env.ctx) as conn:
        rows = await conn.fetch("select to_address, status, error_code from messages "
                                "where source_id = 'crash'")
    by_status = Counter(r["status"] for r in rows)
    assert set(by_status) <= {"sent", "failed"}
    doubtful = {r["to_address"] for r in rows if r["status"] == "failed"}
    assert all(r["error_code"] == "outcome_unknown" for r in rows if r["status"] == "failed")
    assert len(doubtful) == report.in_doubt
    sent = {r["to_address"] for r in rows if r["status"] == "sent"}
    # Every message recorded as sent was received, exactly once; everything else was in
    # flight (or unrecorded) when the worker died and is not retried.
    assert sent <= set(received) and set(received) - sent <= doubtful
    assert len(sent) + len(doubtful) == 100
