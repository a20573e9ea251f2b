"""Per-tenant, per-channel send rate in Redis, shared by every worker.

A one-second window counted atomically (a Lua script): a worker asks for as many sends as
its batch holds and is granted what is left of the current second, so several workers on
the same tenant and channel never exceed the rate together.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], 5)
return grant
"""


_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], ARGV[1]) end
return 0
"""


class Grant:
    """Send slots taken in one window; unused ones go back with `give_back`."""

    def __init__(self, key: str, count: int) -> None:
        self.key, self.count = key, count

    def __bool__(self) -> bool:
        return self.count > 0


async def take(redis: Redis, prefix: str, tenant_id: str, channel: str, want: int,
               per_second: int) -> Grant:
    """How many sends may start now (0..want) within `per_second`."""
    window = int(time.time())
    key = f"{prefix}:sendrate:{tenant_id}:{channel}:{window}"
    if want <= 0:
        return Grant(key, 0)
    return Grant(key, int(await redis.eval(_TAKE, 1, key, want, per_second)))


async def give_back(redis: Redis, grant: Grant, unused: int) -> None:
    """A batch claimed fewer messages than it reserved: free the rest of the window."""
    if unused > 0:
        await redis.eval(_GIVE_BACK, 1, grant.key, unused)


async def acquire(redis: Redis, prefix: str, tenant_id: str, channel: str, want: int,
                  per_second: int, *, deadline: float) -> Grant:
    """Wait (until `deadline`, a `time.monotonic()` value) for at least one send slot."""
    while True:
        granted = await take(redis, prefix, tenant_id, channel, want, per_second)
        if granted or time.monotonic() >= deadline:
            return granted
        await asyncio.sleep(max(0.01, 1.0 - time.time() % 1.0))
