"""Messaging shapes: planned messages (what campaigns, journeys and the API enqueue), the
contact history as the API shows it, and the transactional send request."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import msgspec

Channel = Literal["email", "sms", "whatsapp", "push", "webhook"]
CHANNELS: Final = ("email", "sms", "whatsapp", "push", "webhook")
Category = Literal["marketing", "service", "alert", "transactional"]
Purpose = Literal["marketing", "traffic_info", "loyalty", "service", "transactional"]
SourceType = Literal["campaign", "journey", "transactional"]
Status = Literal["planned", "sending", "sent", "failed", "skipped", "delivered", "bounced",
                 "opened", "clicked", "complained", "unsubscribed"]
# Every status a message_events row may carry (`retrying`: a transient failure, the
# message went back to `planned` for a later attempt).
EventStatus = Literal[Status, "retrying"]

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class PlannedMessage(msgspec.Struct, kw_only=True, frozen=True):
    """One message to plan. The id is derived from (tenant, source_type, source_id, step,
    customer_id, occurrence): planning the same send twice is a no-op."""

    customer_id: UUID
    channel: Channel
    category: Category
    purpose: Purpose
    source_type: SourceType
    source_id: str
    template_id: str | None
    step: str = ""
    occurrence: str = ""
    priority: int = 0
    scheduled_at: datetime | None = None
    locale: str | None = None
    to_address: str | None = None
    tags: tuple[str, ...] = ()
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    status: Literal["planned", "skipped", "failed"] = "planned"
    status_reason: str | None = None
    request_hash: str | None = None


class EnqueueResult(msgspec.Struct):
    ids: list[str]
    """The deterministic id of every input message, in input order."""
    inserted: list[str]
    duplicates: list[str]


class MessageEvent(msgspec.Struct):
    status: str
    at: datetime
    reason: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class Message(msgspec.Struct):
    id: str
    customer_id: UUID
    channel: str
    category: str
    purpose: str
    priority: int
    source_type: str
    source_id: str
    step: str
    occurrence: str
    template_id: str | None
    locale: str | None
    status: str
    status_reason: str | None
    error_code: str | None
    scheduled_at: datetime
    planned_at: datetime
    attempts: int
    sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    unsubscribed_at: datetime | None
    failed_at: datetime | None
    provider: str | None
    provider_message_id: str | None
    to_address: str | None
    tags: list[str]
    events: list[MessageEvent] | None = None


class TransactionalSend(msgspec.Struct, forbid_unknown_fields=True):
    """Send one transactional or alert message to one customer.

    `idempotency_key` makes the request safe to retry: the same key answers with the first
    message; the same key with a different body is refused (409)."""

    idempotency_key: Key
    customer_id: UUID
    template_id: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    locale: str | None = None
    to: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    """Address overriding the profile's (email, E.164 phone, device token)."""
    scheduled_at: datetime | None = None
    priority: Annotated[int, msgspec.Meta(ge=-100, le=100)] = 0
    tags: list[Annotated[str, msgspec.Meta(max_length=64)]] = msgspec.field(
        default_factory=list)


class CallbackUrls(msgspec.Struct):
    """Where providers post delivery statuses for this tenant, one signed URL per sender
    plugin (configure it in the provider's console when it is not sent per message)."""

    urls: dict[str, str]
