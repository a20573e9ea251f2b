"""Dispatch: claim planned messages of one tenant and channel in batches, send them through
the tenant's channel plugin, record the outcome. Never the same message twice:

1. a claim locks a batch with `for update skip locked` (concurrent workers take disjoint
   rows) and moves it `planned → sending` under a lease and a fresh claim token;
2. before the provider calls of a small chunk (`mark_every`), its message ids join a Redis
   set named after the claim token ("started"); the set exists (with a marker) before the
   claim commits;
3. outcomes are written back in small set-based flushes, guarded by the claim token;
4. when a lease expires (the worker died), a recovery puts the messages that never started
   back to `planned`, and fails those that started with `outcome_unknown` instead of
   risking a second send. Without the Redis set, every one of them counts as started.

Provider errors decide the rest: permanent → `failed` (bad address → suppression list);
transient → back to `planned` with exponential backoff (or the provider's Retry-After) until
the tenant's `max_attempts`; tenant-level errors (credentials, configuration) stop the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis

from core.db import Database
from core.messaging import ratelimit
from core.messaging.channels import SenderBinding, enabled_plugins, sender_for
from core.messaging.outbox import claim, mark_claimed, settle_expired, write_outcomes
from core.messaging.policy import DispatchPolicy, dispatch_policy
from core.messaging.prepare import Eligibility, Outcome, Prepared, Preparer
from core.messaging.tracking import Signer
from core.plugin_config.secrets import SecretBox
from core.settings import Settings
from plugins.builtin.channels.base import (
    ChannelError,
    ChannelSender,
    ErrorCode,
    PermanentSendError,
)
from plugins.manager import PluginManager
from plugins.types import MessageStatusChange
from tenants.context import TenantContext

log = logging.getLogger("relais.dispatch")
_MARKER = "-"
# Errors that say the tenant's setup is broken, not this message: stop the batch.
_TENANT_LEVEL = {ErrorCode.AUTH_FAILED, ErrorCode.CONFIG_ERROR, ErrorCode.SENDER_REFUSED}
_SUPPRESS = {ErrorCode.INVALID_RECIPIENT: "invalid_recipient",
             ErrorCode.RECIPIENT_OPTED_OUT: "provider_opt_out"}


@dataclass
class Dispatcher:
    """What dispatching needs; built by the worker job (or a test, or the benchmark)."""

    db: Database
    redis: Redis
    settings: Settings
    plugins: PluginManager
    batch_size: int = 500
    concurrency: int = 8
    flush_every: int = 250
    mark_every: int = 10

    @property
    def signer(self) -> Signer:
        return Signer(self.settings.secret_key, self.settings.base_url)

    def started_key(self, tenant_id: str, token: str) -> str:
        return f"{self.settings.redis_prefix}:dispatch:started:{tenant_id}:{token}"


class DispatchReport(msgspec.Struct):
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retrying: int = 0
    released: int = 0
    delayed: int = 0
    requeued: int = 0
    in_doubt: int = 0
    more: bool = False
    """Due messages were left when the time budget ran out."""


def backoff(attempt: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: the provider's hint, else 30 s doubling (jittered),
    at most an hour."""
    if retry_after is not None:
        return min(max(retry_after, 1.0), 3600.0)
    return min(30.0 * 2 ** (attempt - 1), 3600.0) * random.uniform(0.8, 1.2)


# -- recovery -----------------------------------------------------------------------------

async def recover_expired(d: Dispatcher, ctx: TenantContext, channel: str) -> tuple[int, int]:
    """(requeued, in doubt) among messages whose claim lease expired."""
    async with d.db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            """select id, claim_token from messages
               where status = 'sending' and channel = $1 and lease_until < now()
               for update skip locked""", channel)
        if not rows:
            return 0, 0
        started: set[str] = set()
        for token in {r["claim_token"] for r in rows}:
            members = {m.decode() for m in await d.redis.smembers(d.started_key(
                ctx.tenant_id, token))}
            if _MARKER not in members:  # the record is gone: assume everything started
                started |= {r["id"] for r in rows if r["claim_token"] == token}
            started |= members
        doubtful = [r["id"] for r in rows if r["id"] in started]
        fresh = [r["id"] for r in rows if r["id"] not in started]
        await settle_expired(conn, ctx, doubtful, fresh)
    if doubtful:
        log.warning("claimed messages in doubt after a worker stopped",
                    extra={"tenant": ctx.tenant_id, "channel": channel, "count": len(doubtful)})
    return len(fresh), len(doubtful)


# -- sending ------------------------------------------------------------------------------

@dataclass
class _Run:
    d: Dispatcher
    ctx: TenantContext
    binding: SenderBinding
    policy: DispatchPolicy
    token: str
    attempts: dict[str, int]
    halt: ChannelError | None = None
    buffer: list[Outcome] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    changes: list[MessageStatusChange] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def flush(self) -> None:
        async with self.lock:
            outcomes, self.buffer = self.buffer, []
            if not outcomes:
                return
            async with self.d.db.tenant_tx(self.ctx) as conn:
                self.changes += await write_outcomes(conn, self.ctx, self.d.db.keys, self.token,
                                                     self.binding.plugin, outcomes)

    async def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.buffer.append(outcome)
        if len(self.buffer) >= self.d.flush_every:
            await self.flush()

    def failure(self, prepared: Prepared, error: ChannelError) -> Outcome:
        message_id = prepared.outbound.message_id
        common = {"to_address": prepared.to_address, "locale": prepared.locale,
                  "error_code": str(error.code), "reason": error.reason[:300]}
        retryable = not isinstance(error, PermanentSendError) or error.code in _TENANT_LEVEL
        attempt = self.attempts[message_id]
        if retryable and attempt < self.policy.max_attempts:
            return Outcome(message_id, "planned", **common,
                           retry_in=backoff(attempt, getattr(error, "retry_after", None)))
        return Outcome(message_id, "failed", suppress=_SUPPRESS.get(error.code), **common)

    async def worker(self, queue: asyncio.Queue[Prepared], sender: ChannelSender) -> None:
        started_key = self.d.started_key(self.ctx.tenant_id, self.token)
        while not queue.empty():
            chunk = [queue.get_nowait() for _ in range(min(self.d.mark_every, queue.qsize()))]
            if self.halt is None:
                # Marked "started" before any provider call: one Redis round trip per chunk;
                # a crash leaves at most the chunks in flight in doubt.
                await self.d.redis.sadd(started_key, *(p.outbound.message_id for p in chunk))
            for prepared in chunk:
                await self._send(sender, prepared)

    async def _send(self, sender: ChannelSender, prepared: Prepared) -> None:
        message_id = prepared.outbound.message_id
        if self.halt is not None:
            await self.record(Outcome(message_id, "released"))
            return
        try:
            await sender.open()
            result = await sender.send(prepared.outbound)
        except ChannelError as error:
            if error.code in _TENANT_LEVEL and self.halt is None:
                self.halt = error
            await self.record(self.failure(prepared, error))
            return
        await self.record(Outcome(message_id, "sent", to_address=prepared.to_address,
                                  locale=prepared.locale,
                                  provider_message_id=result.provider_message_id))


async def dispatch(d: Dispatcher, ctx: TenantContext, channel: str, *,
                   time_budget: float = 50.0) -> DispatchReport:
    """Send this tenant's due messages on `channel` until none is left or the time budget is
    spent (then `more` is set and the caller schedules a follow-up)."""
    deadline = time.monotonic() + time_budget
    report = DispatchReport()
    report.requeued, report.in_doubt = await recover_expired(d, ctx, channel)
    box = SecretBox.from_settings(d.settings)
    async with d.db.tenant_tx(ctx) as conn:
        policy = await dispatch_policy(conn, ctx.tenant_id, channel)
        enabled = await enabled_plugins(conn, ctx, d.plugins, box)
        rules = {name: config for name, config in enabled.items()
                 if d.plugins.component(name).kind == "rule"}
        preparer = await Preparer.load(conn, ctx, channel, d.signer, d.db.keys,
                                       Eligibility(d.plugins, rules) if rules else None)
    run = _ChannelRun(d, ctx, channel, policy, preparer, sender_for(channel, enabled, d.plugins),
                      report)
    try:
        while time.monotonic() < deadline and await run.batch(deadline):
            pass
        report.more = report.more or (time.monotonic() >= deadline and run.halt is None)
    finally:
        await run.close()
    if run.changes:
        await d.plugins.message_status_changed(ctx.tenant_id, run.changes,
                                               enabled=list(enabled))
    return report


@dataclass
class _ChannelRun:
    """One dispatch run on one channel: its senders stay connected from batch to batch."""

    d: Dispatcher
    ctx: TenantContext
    channel: str
    policy: DispatchPolicy
    preparer: Preparer
    binding: SenderBinding | None
    report: DispatchReport
    senders: list[ChannelSender] = field(default_factory=list)
    changes: list[MessageStatusChange] = field(default_factory=list)
    halt: ChannelError | None = None

    async def batch(self, deadline: float) -> bool:
        """Claim, prepare and send one batch; False when there is nothing more to do now."""
        d, ctx, channel, policy = self.d, self.ctx, self.channel, self.policy
        grant = await ratelimit.acquire(d.redis, d.settings.redis_prefix, ctx.tenant_id,
                                        channel, d.batch_size, policy.per_second,
                                        deadline=deadline)
        if not grant:
            self.report.more = True
            return False
        token = secrets.token_hex(12)
        key = d.started_key(ctx.tenant_id, token)
        await d.redis.sadd(key, _MARKER)
        await d.redis.expire(key, policy.lease_seconds + 86_400)
        async with d.db.tenant_tx(ctx) as conn:
            rows = await claim(conn, channel, grant.count)
            batch = await self.preparer.prepare(conn, rows) if rows and self.binding else None
            await mark_claimed(conn, ctx, token, policy.lease_seconds, rows,
                               batch.ready if batch else ())
        await ratelimit.give_back(d.redis, grant, grant.count - len(rows))
        if not rows:
            await d.redis.delete(key)
            return False
        self.report.claimed += len(rows)
        if self.binding is None or batch is None:
            outcomes = [Outcome(r["id"], "failed", error_code="channel_not_enabled",
                                reason=f"the tenant has no {channel} plugin enabled")
                        for r in rows]
            async with d.db.tenant_tx(ctx) as conn:
                self.changes += await write_outcomes(conn, ctx, d.db.keys, token, None,
                                                     outcomes)
            _count(self.report, outcomes)
            return True
        binding = self.binding
        run = _Run(d, ctx, binding, policy, token, {r["id"]: r["attempts"] for r in rows})
        for outcome in batch.outcomes:
            await run.record(outcome)
        queue: asyncio.Queue[Prepared] = asyncio.Queue()
        for prepared in batch.ready:
            queue.put_nowait(prepared)
        workers = min(d.concurrency, max(1, len(batch.ready)))
        while len(self.senders) < workers:  # one connection each, kept for the whole run
            self.senders.append(binding.build(d.signer.status_url(ctx.tenant_id,
                                                                  binding.plugin)))
        await asyncio.gather(*(run.worker(queue, self.senders[i]) for i in range(workers)))
        await run.flush()
        await d.redis.delete(key)
        self.changes += run.changes
        _count(self.report, run.outcomes)
        if run.halt is not None:
            self.halt = run.halt
            log.error("dispatch halted by a tenant-level provider error",
                      extra={"tenant": ctx.tenant_id, "channel": channel,
                             "plugin": binding.plugin, "code": str(run.halt.code)})
            return False
        return True

    async def close(self) -> None:
        for sender in self.senders:
            with contextlib.suppress(Exception):
                await sender.close()


def _count(report: DispatchReport, outcomes: Sequence[Outcome]) -> None:
    for o in outcomes:
        if o.status == "planned":
            report.retrying += 1
        else:
            setattr(report, o.status, getattr(report, o.status) + 1)
