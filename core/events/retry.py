"""Ingestion transactions that PostgreSQL aborted as a deadlock victim run again.

Batches take their row and index locks in a fixed order (identifiers by kind and value,
profiles by id, events by message_id), but two concurrent batches touching overlapping
identifiers can still meet in an order no sort prevents (a foreign-key check on a profile
one batch locked, a unique-index wait on an identifier the other inserted). PostgreSQL then
aborts one transaction with a deadlock (or, for the same reason under stricter isolation, a
serialization failure). Nothing of an aborted transaction persisted, so running the whole
transaction again from its first statement is exactly-once: the retry must redo all of its
work from its inputs (the ingestion services prepare their records again in the retried
function), never resume from state the aborted attempt left in memory.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from core.db import Connection, Database
from tenants.context import TenantContext

T = TypeVar("T")
log = logging.getLogger("relais.ingestion")

RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
ATTEMPTS = 4
# First pause before a retry, doubled each time, with jitter (half to all of it) so two
# victims of the same cycle do not collide again in step.
BACKOFF_SECONDS = 0.02


async def retrying_tenant_tx(db: Database, ctx: TenantContext,
                       work: Callable[[Connection], Awaitable[T]], *,
                       attempts: int = ATTEMPTS, backoff: float = BACKOFF_SECONDS) -> T:
    """`work(conn)` in a `db.tenant_tx(ctx)` transaction, retried from the start (a new
    transaction, `work` called again) when PostgreSQL aborts it with a deadlock or a
    serialization failure, at most `attempts` times in all; any other error, or the last
    attempt's, propagates."""
    attempt = 1
    while True:
        try:
            async with db.tenant_tx(ctx) as conn:
                return await work(conn)
        except RETRYABLE as exc:
            if attempt >= attempts:
                raise
            pause = backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
            log.warning("ingestion transaction aborted by PostgreSQL, retrying",
                        extra={"tenant_id": ctx.tenant_id, "attempt": attempt,
                               "error": type(exc).__name__, "pause_s": round(pause, 3)})
            await asyncio.sleep(pause)
            attempt += 1


__all__ = ["ATTEMPTS", "RETRYABLE", "retrying_tenant_tx"]
