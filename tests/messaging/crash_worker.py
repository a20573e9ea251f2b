"""A dispatcher in its own process, for the crash test: `python -m tests.messaging.crash_worker
'<json>'`. The test kills it with SIGKILL mid-batch, so nothing of it gets to clean up."""

from __future__ import annotations

import asyncio
import json
import sys

from redis.asyncio import Redis

from core.db import Database
from core.messaging.dispatch import Dispatcher, dispatch
from core.settings import Settings
from plugins.manager import load_plugins
from tenants.context import SYSTEM
from tenants.service import tenant_context


async def main(spec: dict) -> None:
    settings = Settings(**spec["settings"])
    db = await Database.connect(settings)
    redis = Redis.from_url(settings.redis_url)
    d = Dispatcher(db=db, redis=redis, settings=settings, plugins=load_plugins(),
                   batch_size=spec["batch_size"], concurrency=2,
                   flush_every=spec["flush_every"])
    ctx = await tenant_context(db, spec["tenant_id"], SYSTEM)
    print("ready", flush=True)
    await dispatch(d, ctx, spec["channel"], time_budget=60)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
