"""Per-key rate limiting in Redis, shared by every API process.

A fixed one-minute window counted with INCR: atomic across processes (Litestar's built-in
limiter does a read-modify-write of a history list, which lets concurrent requests from
several workers slip past the limit).
"""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis


class RateDecision(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int
    remaining: int
    reset_in: int


async def hit(redis: Redis, prefix: str, subject: str, limit: int) -> RateDecision:
    now = time.time()
    window = int(now // 60)
    key = f"{prefix}:rl:{subject}:{window}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
    reset_in = max(1, int(60 - now % 60))
    return RateDecision(allowed=count <= limit, limit=limit,
                        remaining=max(0, limit - count), reset_in=reset_in)
