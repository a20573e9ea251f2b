"""What every job receives, and enqueueing with deterministic job ids."""

from __future__ import annotations

from typing import Any, TypedDict

from arq import ArqRedis
from arq.jobs import Job
from redis.asyncio import Redis

from core.db import Database
from core.settings import Settings


class JobContext(TypedDict, total=False):
    settings: Settings
    db: Database
    redis: ArqRedis
    job_id: str
    job_try: int


def job_id(settings: Settings, function: str, tenant_id: str, key: str) -> str:
    """Same work, same id: arq refuses to enqueue a job whose id is queued, running or has
    a kept result, so a double click or a retried cron run never duplicates work. arq's job
    keys are global to the Redis, hence the deployment prefix."""
    return f"{settings.redis_prefix}:{function}:{tenant_id}:{key}"


async def enqueue(
    arq: ArqRedis | Redis, settings: Settings, function: str, *, tenant_id: str, key: str,
    **kwargs: Any,
) -> Job | None:
    """Returns None when the same job already exists."""
    return await arq.enqueue_job(
        function, tenant_id, **kwargs,
        _job_id=job_id(settings, function, tenant_id, key),
        _queue_name=settings.queue_name,
    )
