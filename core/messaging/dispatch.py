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
from datetime import UTC, datetime

import msgspec
from redis.asyncio import Redis

from core.db import Connection, Database
from core.messaging import ratelimit
from core.messaging.channels import SenderBinding, enabled_plugins, sender_for
from core.messaging.policy import DispatchPolicy, dispatch_policy
from core.messaging.prepare import Outcome, Prepared, Preparer
from core.messaging.statuses import ADDRESS_KIND, suppress
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


# -- claim and recovery -------------------------------------------------------------------

_PICK = """
    select id, customer_id, category, purpose, template_id, locale, to_address, data,
           attempts + 1 as attempts
    from messages
    where status = 'planned' and channel = $1 and scheduled_at <= now() {urgent}
    order by scheduled_at limit $2 for update skip locked"""
_URGENT = "and category in ('transactional', 'alert')"
_ROUTINE = "and category not in ('transactional', 'alert')"


async def claim(conn: Connection, channel: str, limit: int) -> list:
    """Lock up to `limit` due messages (other workers skip them). Transactional messages
    and alerts first (a traffic alert must not wait behind a campaign), then the rest,
    each in scheduled order. `mark_claimed` must follow in the same transaction."""
    rows = await conn.fetch(_PICK.format(urgent=_URGENT), channel, limit)
    if len(rows) < limit:
        rows += await conn.fetch(_PICK.format(urgent=_ROUTINE), channel, limit - len(rows))
    return rows


async def mark_claimed(conn: Connection, ctx: TenantContext, token: str, lease_seconds: int,
                       rows: Sequence, ready: Sequence[Prepared]) -> None:
    """`planned → sending` under the claim token and lease, recording where each message
    goes before anything is sent (so even a message left in doubt by a dead worker can be
    matched by a later bounce). One row version per message for the whole claim."""
    where = {p.outbound.message_id: p for p in ready}
    ids = [r["id"] for r in rows]
    await conn.execute(
        """update messages m set status = 'sending', claim_token = $2,
                  lease_until = now() + make_interval(secs => $3), attempts = m.attempts + 1,
                  to_address = coalesce(u.address, m.to_address),
                  locale = coalesce(u.locale, m.locale), updated_at = now()
           from unnest($4::text[], $5::text[], $6::text[]) as u(id, address, locale)
           where m.tenant_id = $1 and m.id = u.id""",
        ctx.tenant_id, token, lease_seconds, ids,
        [where[i].to_address if i in where else None for i in ids],
        [where[i].locale if i in where else None for i in ids])


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
        await conn.execute(
            """with f as (update messages set status = 'failed', error_code = 'outcome_unknown',
                              status_reason = 'the worker stopped during the send',
                              failed_at = now(), claim_token = null, lease_until = null,
                              updated_at = now()
                          where id = any($2::text[]) returning id),
                    r as (update messages set status = 'planned', attempts = attempts - 1,
                              claim_token = null, lease_until = null, updated_at = now()
                          where id = any($3::text[]) returning id)
               insert into message_events (tenant_id, message_id, status, reason)
               select $1, id, 'failed', 'outcome_unknown' from f""",
            ctx.tenant_id, doubtful, fresh)
    if doubtful:
        log.warning("claimed messages in doubt after a worker stopped",
                    extra={"tenant": ctx.tenant_id, "channel": channel, "count": len(doubtful)})
    return len(fresh), len(doubtful)


# -- writing outcomes ---------------------------------------------------------------------

_EVENT_OF = {"planned": "retrying"}


async def write_outcomes(conn: Connection, ctx: TenantContext, token: str, provider: str | None,
                         outcomes: Sequence[Outcome]) -> list[MessageStatusChange]:
    """One statement for the rows, one for the events; only rows still held by `token`
    change, so a worker whose lease was recovered cannot overwrite the recovery."""
    if not outcomes:
        return []
    now = datetime.now(UTC)
    rows = await conn.fetch(
        """with u as (select * from unnest($3::text[], $4::text[], $5::text[], $6::text[],
                                           $7::text[], $8::text[], $9::text[], $10::float8[])
                      as u(id, status, reason, error_code, provider_id, to_address, locale,
                           retry_in)),
                done as (
                   update messages m set
                       status = case when u.status = 'released' then 'planned'
                                     else u.status end,
                       status_reason = u.reason, error_code = u.error_code,
                       provider = case when u.status = 'sent' then $11 else m.provider end,
                       provider_message_id = coalesce(u.provider_id, m.provider_message_id),
                       to_address = coalesce(u.to_address, m.to_address),
                       locale = coalesce(u.locale, m.locale),
                       sent_at = case when u.status = 'sent' then $2 else m.sent_at end,
                       failed_at = case when u.status = 'failed' then $2 else m.failed_at end,
                       scheduled_at = case when u.retry_in is not null
                                           then $2 + make_interval(secs => u.retry_in)
                                           else m.scheduled_at end,
                       attempts = case when u.status = 'released' then m.attempts - 1
                                       else m.attempts end,
                       claim_token = null, lease_until = null, updated_at = $2
                   from u where m.tenant_id = $1 and m.id = u.id and m.claim_token = $12
                   returning m.id, m.customer_id, m.channel, u.status, u.reason, u.error_code,
                             u.provider_id)
           , events as (
               insert into message_events (tenant_id, message_id, status, at, reason, details)
               select $1, id, case status when 'planned' then 'retrying' else status end, $2,
                      coalesce(reason, error_code),
                      jsonb_strip_nulls(jsonb_build_object('error_code', error_code,
                                                           'provider_message_id', provider_id))
               from done where status <> 'released')
           select id, customer_id, channel, status, reason from done""",
        ctx.tenant_id, now, [o.message_id for o in outcomes], [o.status for o in outcomes],
        [o.reason for o in outcomes], [o.error_code for o in outcomes],
        [o.provider_message_id for o in outcomes], [o.to_address for o in outcomes],
        [o.locale for o in outcomes], [o.retry_in for o in outcomes], provider, token)
    kind = ADDRESS_KIND.get(rows[0]["channel"]) if rows else None
    to_suppress = [(kind, o.to_address, o.suppress) for o in outcomes
                   if kind and o.suppress and o.to_address]
    await suppress(conn, ctx, to_suppress)
    return [MessageStatusChange(message_id=r["id"], customer_id=r["customer_id"],
                                channel=r["channel"], status=_EVENT_OF.get(r["status"],
                                                                           r["status"]),
                                previous_status="sending", at=now, reason=r["reason"])
            for r in rows if r["status"] != "released"]


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
                self.changes += await write_outcomes(conn, self.ctx, self.token,
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
        preparer = await Preparer.load(conn, ctx, channel, d.signer)
    binding = sender_for(channel, enabled, d.plugins)
    senders: list[ChannelSender] = []
    try:
        return await _dispatch_batches(d, ctx, channel, deadline, report, policy, enabled,
                                       preparer, binding, senders)
    finally:
        for sender in senders:
            with contextlib.suppress(Exception):
                await sender.close()


async def _dispatch_batches(d: Dispatcher, ctx: TenantContext, channel: str, deadline: float,
                            report: DispatchReport, policy: DispatchPolicy, enabled: dict,
                            preparer: Preparer, binding: SenderBinding | None,
                            senders: list[ChannelSender]) -> DispatchReport:
    changes: list[MessageStatusChange] = []
    while True:
        if time.monotonic() >= deadline:
            report.more = True
            break
        grant = await ratelimit.acquire(d.redis, d.settings.redis_prefix, ctx.tenant_id,
                                        channel, d.batch_size, policy.per_second,
                                        deadline=deadline)
        if not grant:
            report.more = True
            break
        token = secrets.token_hex(12)
        key = d.started_key(ctx.tenant_id, token)
        await d.redis.sadd(key, _MARKER)
        await d.redis.expire(key, policy.lease_seconds + 86_400)
        async with d.db.tenant_tx(ctx) as conn:
            rows = await claim(conn, channel, grant.count)
            batch = await preparer.prepare(conn, rows) if rows and binding else None
            await mark_claimed(conn, ctx, token, policy.lease_seconds, rows,
                               batch.ready if batch else ())
        await ratelimit.give_back(d.redis, grant, grant.count - len(rows))
        if not rows:
            await d.redis.delete(key)
            break
        report.claimed += len(rows)
        if binding is None:
            outcomes = [Outcome(r["id"], "failed", error_code="channel_not_enabled",
                                reason=f"the tenant has no {channel} plugin enabled")
                        for r in rows]
            async with d.db.tenant_tx(ctx) as conn:
                changes += await write_outcomes(conn, ctx, token, None, outcomes)
            _count(report, outcomes)
            continue
        assert batch is not None
        run = _Run(d, ctx, binding, policy, token, {r["id"]: r["attempts"] for r in rows})
        for outcome in batch.outcomes:
            await run.record(outcome)
        queue: asyncio.Queue[Prepared] = asyncio.Queue()
        for prepared in batch.ready:
            queue.put_nowait(prepared)
        workers = min(d.concurrency, max(1, len(batch.ready)))
        while len(senders) < workers:  # one connection each, kept for the whole run
            senders.append(binding.build(d.signer.status_url(ctx.tenant_id, binding.plugin)))
        await asyncio.gather(*(run.worker(queue, senders[i]) for i in range(workers)))
        await run.flush()
        await d.redis.delete(key)
        changes += run.changes
        _count(report, run.outcomes)
        if run.halt is not None:
            log.error("dispatch halted by a tenant-level provider error",
                      extra={"tenant": ctx.tenant_id, "channel": channel,
                             "plugin": binding.plugin, "code": str(run.halt.code)})
            report.more = False
            break
    await _notify(d, ctx, enabled, changes)
    return report


def _count(report: DispatchReport, outcomes: Sequence[Outcome]) -> None:
    for o in outcomes:
        if o.status == "planned":
            report.retrying += 1
        else:
            setattr(report, o.status, getattr(report, o.status) + 1)


async def _notify(d: Dispatcher, ctx: TenantContext, enabled: dict,
                  changes: list[MessageStatusChange]) -> None:
    if changes:
        await d.plugins.message_status_changed(ctx.tenant_id, changes, enabled=list(enabled))
