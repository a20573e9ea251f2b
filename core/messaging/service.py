"""The outbox / contact history: planning messages in bulk, reading them back.

`enqueue_planned` is what campaigns, journeys and the transactional API call: one set-based
insert per chunk, `on conflict do nothing` on the deterministic id, so re-planning the same
step for the same customer and occurrence never creates a second message. The dispatcher
(`core.messaging.dispatch`) takes it from there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from arq import ArqRedis
from redis.asyncio import Redis

from core.db import Connection, Database
from core.errors import NotFound
from core.jobs.context import enqueue
from core.messaging.ids import message_id
from core.messaging.schemas import EnqueueResult, Message, MessageEvent, PlannedMessage
from core.pagination import Page, check_limit, decode_cursor, page_of
from core.settings import Settings
from tenants.context import TenantContext

COLUMNS = ("id, customer_id, channel, category, purpose, priority, source_type, source_id, "
           "step, occurrence, template_id, locale, status, status_reason, error_code, "
           "scheduled_at, planned_at, attempts, sent_at, delivered_at, opened_at, clicked_at, "
           "unsubscribed_at, failed_at, provider, provider_message_id, to_address, tags")
_CHUNK = 5000


def id_of(tenant_id: str, m: PlannedMessage) -> str:
    return message_id(tenant_id, m.source_type, m.source_id, m.step, m.customer_id,
                      m.occurrence)


async def insert_planned(conn: Connection, ctx: TenantContext,
                         messages: Sequence[PlannedMessage], *,
                         ids: Sequence[str] | None = None) -> EnqueueResult:
    """Inside the caller's tenant transaction (so planning commits with whatever decided
    it). Returns every id and which ones were new. `ids` overrides the derived ids (the
    transactional API keys its messages on the idempotency key)."""
    now = datetime.now(UTC)
    ids = list(ids) if ids is not None else [id_of(ctx.tenant_id, m) for m in messages]
    inserted: list[str] = []
    for start in range(0, len(messages), _CHUNK):
        chunk = messages[start:start + _CHUNK]
        chunk_ids = ids[start:start + _CHUNK]
        rows = await conn.fetch(
            """with new as (
                   insert into messages (tenant_id, id, customer_id, channel, category,
                       purpose, priority, source_type, source_id, step, occurrence,
                       template_id, locale, scheduled_at, to_address, tags, data, status,
                       status_reason, request_hash)
                   select $1, u.id, u.customer_id, u.channel, u.category, u.purpose,
                          u.priority, u.source_type, u.source_id, u.step, u.occurrence,
                          u.template_id, u.locale, coalesce(u.scheduled_at, $2), u.to_address,
                          coalesce((select array_agg(t)
                                    from jsonb_array_elements_text(u.tags::jsonb) t), '{}'),
                          u.data, u.status, u.status_reason, u.request_hash
                   from unnest($3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                               $8::int[], $9::text[], $10::text[], $11::text[], $12::text[],
                               $13::text[], $14::text[], $15::timestamptz[], $16::text[],
                               $17::text[], $18::jsonb[], $19::text[], $20::text[],
                               $21::text[])
                        as u(id, customer_id, channel, category, purpose, priority,
                             source_type, source_id, step, occurrence, template_id, locale,
                             scheduled_at, to_address, tags, data, status, status_reason,
                             request_hash)
                   on conflict (tenant_id, id) do nothing
                   returning id, status, status_reason)
               , events as (
                   -- `planned` is implied by the row (see fetch_message); a message
                   -- born decided (skipped, failed) records that decision.
                   insert into message_events (tenant_id, message_id, status, reason)
                   select $1, id, status, status_reason from new where status <> 'planned')
               select id from new""",
            ctx.tenant_id, now, chunk_ids,
            [m.customer_id for m in chunk], [m.channel for m in chunk],
            [m.category for m in chunk], [m.purpose for m in chunk],
            [m.priority for m in chunk], [m.source_type for m in chunk],
            [m.source_id for m in chunk], [m.step for m in chunk],
            [m.occurrence for m in chunk], [m.template_id for m in chunk],
            [m.locale for m in chunk], [m.scheduled_at for m in chunk],
            [m.to_address for m in chunk], [json.dumps(list(m.tags)) for m in chunk],
            [m.data for m in chunk], [m.status for m in chunk],
            [m.status_reason for m in chunk], [m.request_hash for m in chunk])
        inserted.extend(r["id"] for r in rows)
    new = set(inserted)
    return EnqueueResult(ids=ids, inserted=[i for i in ids if i in new],
                         duplicates=[i for i in ids if i not in new])


async def enqueue_planned(db: Database, ctx: TenantContext,
                          messages: Sequence[PlannedMessage]) -> EnqueueResult:
    """Plan messages in bulk (own transaction). Call `kick_dispatch` afterwards, or let the
    minute cron pick them up at their `scheduled_at`."""
    async with db.tenant_tx(ctx) as conn:
        return await insert_planned(conn, ctx, messages)


async def kick_dispatch(arq: ArqRedis | Redis, settings: Settings, tenant_id: str,
                        channels: Sequence[str]) -> None:
    """Start dispatching now. Job ids are per second: a burst of API calls starts one job,
    and a job finishing its last batch never blocks the next one."""
    second = int(datetime.now(UTC).timestamp())
    for channel in sorted(set(channels)):
        await enqueue(arq, settings, "dispatch_messages", tenant_id=tenant_id,
                      key=f"{channel}:{second}", channel=channel)


# -- reading ------------------------------------------------------------------------------

def _message(row: object, events: list[MessageEvent] | None = None) -> Message:
    data = dict(row)  # type: ignore[call-overload]
    data["tags"] = list(data["tags"])
    return Message(**data, events=events)


async def fetch_message(conn: Connection, msg_id: str) -> Message | None:
    row = await conn.fetchrow(f"select {COLUMNS} from messages where id = $1", msg_id)
    if row is None:
        return None
    events = await conn.fetch(
        """select status, at, reason, details from message_events where message_id = $1
           order by id""", msg_id)
    return _message(row, [MessageEvent(status="planned", at=row["planned_at"])]
                    + [MessageEvent(**dict(e)) for e in events])


async def get_message(db: Database, ctx: TenantContext, msg_id: str) -> Message:
    async with db.tenant_tx(ctx) as conn:
        message = await fetch_message(conn, msg_id)
    if message is None:
        raise NotFound(f"message {msg_id!r} not found")
    return message


async def list_messages(db: Database, ctx: TenantContext, *, cursor: str | None, limit: int,
                        customer_id: UUID | None = None, status: str | None = None,
                        channel: str | None = None, source_type: str | None = None,
                        source_id: str | None = None) -> Page[Message]:
    """Newest planned first."""
    check_limit(limit)
    after = decode_cursor(cursor, tuple[datetime, str])
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select {COLUMNS} from messages
                where ($1::timestamptz is null or (planned_at, id) < ($1, $2))
                  and ($3::uuid is null or customer_id = $3)
                  and ($4::text is null or status = $4)
                  and ($5::text is null or channel = $5)
                  and ($6::text is null or source_type = $6)
                  and ($7::text is null or source_id = $7)
                order by planned_at desc, id desc limit $8""",
            *(after or (None, None)), customer_id, status, channel, source_type, source_id,
            limit + 1)
    return page_of([_message(r) for r in rows], limit, lambda m: (m.planned_at, m.id))


# For the customer timeline (core/customers), one more branch of its union: same columns as
# the others (kind, at, ref, summary, data), customer ids in $1.
TIMELINE_BRANCH = """select 'message'::text as kind, m.planned_at as at, m.id as ref,
           m.channel || ' ' || coalesce(m.template_id, m.source_type) || ': ' || m.status
               as summary,
           jsonb_build_object('id', m.id, 'channel', m.channel, 'category', m.category,
               'status', m.status, 'template_id', m.template_id, 'source_type', m.source_type,
               'source_id', m.source_id, 'sent_at', m.sent_at, 'delivered_at', m.delivered_at,
               'opened_at', m.opened_at, 'clicked_at', m.clicked_at,
               'unsubscribed_at', m.unsubscribed_at,
               'history', jsonb_build_array(jsonb_build_object(
                              'status', 'planned', 'at', m.planned_at, 'reason', null))
                          || coalesce((select jsonb_agg(jsonb_build_object(
                                  'status', e.status, 'at', e.at, 'reason', e.reason)
                                  order by e.id)
                              from message_events e
                              where e.tenant_id = m.tenant_id and e.message_id = m.id),
                              '[]')) as data
    from messages m where m.customer_id = any($1::uuid[])"""


async def anonymise_customer_messages(conn: Connection, customer_ids: Sequence[UUID]) -> int:
    """For GDPR erasure (core/gdpr): the history keeps counting (pressure, KPIs) but no
    longer holds the address or the personal data rendered into the message."""
    return int(await conn.fetchval(
        """with done as (update messages set to_address = null, data = '{}'
                         where customer_id = any($1::uuid[])
                           and (to_address is not null or data <> '{}') returning 1)
           select count(*) from done""", list(customer_ids)))
