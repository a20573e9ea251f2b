"""The outbox state machine in SQL: claiming due messages, recording where they go, writing
dispatch outcomes, settling expired claims. Set-based, inside the caller's tenant
transaction; the dispatcher (`core.messaging.dispatch`) decides when."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from core.db import Connection
from core.identity.keys import Keys
from core.messaging.prepare import Outcome, Prepared
from core.messaging.statuses import ADDRESS_KIND, suppress
from plugins.types import MessageStatusChange
from tenants.context import TenantContext

_PICK = """
    select id, customer_id, channel, category, purpose, template_id, locale, to_address,
           data, attempts + 1 as attempts, scheduled_at, source_type, source_id, step, tags
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


async def settle_expired(conn: Connection, ctx: TenantContext, doubtful: Sequence[str],
                         fresh: Sequence[str]) -> None:
    """Expired claims: those that may have reached the provider fail `outcome_unknown`,
    those that never started go back to `planned` (their attempt did not happen)."""
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


_EVENT_OF = {"planned": "retrying"}


async def write_outcomes(conn: Connection, ctx: TenantContext, keys: Keys, token: str,
                         provider: str | None,
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
                       status = case when u.status in ('released', 'delayed') then 'planned'
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
                       attempts = case when u.status in ('released', 'delayed')
                                       then m.attempts - 1 else m.attempts end,
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
    await suppress(conn, ctx, keys, to_suppress)
    return [MessageStatusChange(message_id=r["id"], customer_id=r["customer_id"],
                                channel=r["channel"], status=_EVENT_OF.get(r["status"],
                                                                           r["status"]),
                                previous_status="sending", at=now, reason=r["reason"])
            for r in rows if r["status"] != "released"]
