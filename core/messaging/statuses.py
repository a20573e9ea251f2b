"""Status changes after a message left: delivery reports, bounces, complaints, opens, clicks,
unsubscribes. One place decides how a status moves and what it implies:

- the `status` column only moves forward (`RANK`): a late `delivered` never hides an
  `opened`; every change is still appended to `message_events`;
- hard bounces and complaints put the address on the tenant's suppression list (keyed hash,
  like erasure), so no later message reaches it;
- the first open/delivery/... sets its timestamp column, which KPIs and caps count over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from core.db import Connection
from core.errors import InvalidInput
from core.identity.keys import Keys
from core.identity.normalise import hash_identifier, normalise_identifier
from core.model.service import load_suppression_key
from plugins.types import MessageStatusChange
from tenants.context import TenantContext

RANK = {"planned": 0, "skipped": 1, "sending": 1, "sent": 2, "failed": 3, "delivered": 3,
        "bounced": 4, "opened": 5, "clicked": 6, "unsubscribed": 7, "complained": 7}
TIMESTAMP = {"sent": "sent_at", "delivered": "delivered_at", "opened": "opened_at",
             "clicked": "clicked_at", "unsubscribed": "unsubscribed_at", "failed": "failed_at",
             "bounced": "failed_at"}
ADDRESS_KIND = {"email": "email", "sms": "phone", "whatsapp": "phone"}


class StatusUpdate(msgspec.Struct, kw_only=True):
    """One report about one message, found by our id or by the provider's."""

    status: str
    message_id: str | None = None
    provider_message_id: str | None = None
    at: datetime | None = None
    reason: str | None = None
    error_code: str | None = None
    hard: bool = False
    """A bounce that will never succeed (unknown mailbox, invalid number): suppress."""
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class Applied(msgspec.Struct):
    message_id: str
    customer_id: Any
    channel: str
    purpose: str
    status: str
    previous_status: str
    recorded: bool


async def _target(conn: Connection, update: StatusUpdate) -> Any:
    cols = ("id, customer_id, channel, purpose, status, to_address, opened_at, sent_at, "
            "delivered_at, clicked_at, unsubscribed_at, failed_at")
    if update.message_id:
        return await conn.fetchrow(
            f"select {cols} from messages where id = $1 for update", update.message_id)
    if update.provider_message_id:
        return await conn.fetchrow(
            f"""select {cols} from messages where provider_message_id = $1
                order by planned_at desc limit 1 for update""", update.provider_message_id)
    return None


async def apply_updates(conn: Connection, ctx: TenantContext, keys: Keys,
                        updates: Sequence[StatusUpdate]) -> list[Applied]:
    """Apply reports in order, inside the caller's tenant transaction. Unknown messages are
    skipped (a provider may report on messages another system sent)."""
    applied: list[Applied] = []
    to_suppress: list[tuple[str, str, str]] = []
    for update in updates:
        row = await _target(conn, update)
        if row is None or update.status not in RANK:
            continue
        at = update.at or datetime.now(UTC)
        column = TIMESTAMP.get(update.status)
        if column is None:
            first = row["status"] != update.status
        else:
            first = row[column] is None
        recorded = first or update.status == "clicked"
        new_status = update.status if RANK[update.status] >= RANK[row["status"]] \
            else row["status"]
        values: list[Any] = [row["id"], new_status]
        sets = ["status = $2", "updated_at = now()"]

        def param(value: Any, values: list[Any] = values) -> str:
            values.append(value)
            return f"${len(values)}"

        if column:
            sets.append(f"{column} = coalesce({column}, {param(at)})")
        if update.status == "clicked":  # a click proves the open
            sets.append(f"opened_at = coalesce(opened_at, {param(at)})")
        if update.status in ("failed", "bounced", "complained") and new_status == update.status:
            sets += [f"status_reason = coalesce({param(update.reason)}, status_reason)",
                     f"error_code = coalesce({param(update.error_code)}, error_code)"]
        if first or new_status != row["status"]:  # a repeated open or click changes no row
            await conn.execute(f"update messages set {', '.join(sets)} where id = $1",
                               *values)
        if update.status == "clicked" and row["opened_at"] is None:
            await conn.execute(
                """insert into message_events (tenant_id, message_id, status, at, reason)
                   values ($1, $2, 'opened', $3, 'implied by a click')""",
                ctx.tenant_id, row["id"], at)
        if recorded:
            details = dict(update.details)
            if update.error_code:
                details["error_code"] = update.error_code
            await conn.execute(
                """insert into message_events (tenant_id, message_id, status, at, reason,
                                               details)
                   values ($1, $2, $3, $4, $5, $6)""",
                ctx.tenant_id, row["id"], update.status, at, update.reason, details)
        if (update.status == "complained" or (update.status == "bounced" and update.hard)) \
                and row["to_address"] and row["channel"] in ADDRESS_KIND:
            to_suppress.append((ADDRESS_KIND[row["channel"]], row["to_address"],
                                "complaint" if update.status == "complained" else "hard_bounce"))
        applied.append(Applied(message_id=row["id"], customer_id=row["customer_id"],
                               channel=row["channel"], purpose=row["purpose"],
                               status=update.status, previous_status=row["status"],
                               recorded=recorded))
    await suppress(conn, ctx, keys, to_suppress)
    return applied


def address_hash(kind: str, address: str, key: bytes, country: str) -> str | None:
    """The suppression-list hash of an address, or None if it is not a valid one."""
    try:
        return hash_identifier(kind, normalise_identifier(kind, address, country), key)
    except InvalidInput:
        return None


async def suppress(conn: Connection, ctx: TenantContext, keys: Keys,
                   entries: Sequence[tuple[str, str, str]]) -> int:
    """Put (kind, address, reason) on the suppression list; returns how many were new."""
    if not entries:
        return 0
    key = await load_suppression_key(conn, ctx, keys)
    rows = [(kind, h, reason) for kind, address, reason in entries
            if (h := address_hash(kind, address, key, ctx.country)) is not None]
    if not rows:
        return 0
    return int(await conn.fetchval(
        """with new as (insert into suppressions (tenant_id, kind, value_hash, reason)
                        select $1, k, h, r from unnest($2::text[], $3::text[], $4::text[])
                             as u(k, h, r)
                        on conflict do nothing returning 1)
           select count(*) from new""",
        ctx.tenant_id, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]))


def status_changes(applied: Sequence[Applied]) -> list[MessageStatusChange]:
    """What the `relais_message_status_changed` hook receives: recorded changes only."""
    return [MessageStatusChange(message_id=a.message_id, customer_id=a.customer_id,
                                channel=a.channel, status=a.status,
                                previous_status=a.previous_status)
            for a in applied if a.recorded]
