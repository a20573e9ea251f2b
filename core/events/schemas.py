"""Ingestion payloads (events, identify calls) and per-item results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=200,
                                        pattern=r"^[^\x00-\x1f\x7f]+$",
                                        description="idempotency key, unique per tenant")]
EventTypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                            pattern=r"^[^\x00-\x1f\x7f]+$")]
MAX_BATCH_ITEMS = 1000
MAX_BATCH_BYTES = 1_048_576
# Items of a batch are numerous, short-lived and never form reference cycles: `gc=False`
# keeps them out of the cyclic collector, whose full passes otherwise cost a large share of
# ingestion CPU.
ItemStatus = Literal["accepted", "duplicate", "rejected", "quarantined"]


class Identifiers(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False,
                  frozen=True):
    """Raw identifiers; each is normalised (email lower-cased, phone to E.164 with the
    tenant's country as default region, ids compacted) before it is matched."""

    email: str | None = None
    phone: str | None = None
    ticketing_id: str | None = None
    app_user_id: str | None = None
    loyalty_id: str | None = None
    external: dict[str, str] | None = None  # source -> id, e.g. {"zendesk": "123"}


class EventIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    message_id: MessageId
    type: EventTypeName
    identifiers: Identifiers | None = None
    customer_id: uuid.UUID | None = None
    occurred_at: datetime | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


class IdentifyIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    identifiers: Identifiers
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    # Optional: when given, the call is idempotent and appears in the timeline.
    message_id: MessageId | None = None
    timestamp: datetime | None = None


class ItemResult(msgspec.Struct, omit_defaults=True, gc=False):
    index: int
    status: ItemStatus
    reason: str | None = None
    field: str | None = None
    customer_id: uuid.UUID | None = None


class RawBatch(msgspec.Struct, forbid_unknown_fields=True):
    """A batch body: items kept raw so one malformed item is rejected alone."""

    items: list[msgspec.Raw]


class BatchResult(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: int
    quarantined: int
    results: list[ItemResult]

    @classmethod
    def of(cls, results: list[ItemResult]) -> BatchResult:
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0, "quarantined": 0}
        for r in results:
            counts[r.status] += 1
        return cls(accepted=counts["accepted"], duplicates=counts["duplicate"],
                   rejected=counts["rejected"], quarantined=counts["quarantined"],
                   results=results)


class QuarantinedEvent(msgspec.Struct):
    id: int
    message_id: str
    type: str
    payload: dict[str, Any]
    reasons: list[dict[str, str]]
    source: str
    received_at: datetime


class StoredEvent(msgspec.Struct):
    id: int
    message_id: str
    customer_id: uuid.UUID
    type: str
    occurred_at: datetime
    received_at: datetime
    properties: dict[str, Any]
    source: str


class ImportCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["events", "identify"]
    items: list[dict[str, Any]]
    source: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")] = "import"


class ImportJob(msgspec.Struct):
    id: uuid.UUID
    kind: str
    source: str
    status: str
    total: int
    processed: int
    created_at: datetime
    updated_at: datetime
    summary: dict[str, int] | None = None
    results: list[ItemResult] | None = None
    error: str | None = None
