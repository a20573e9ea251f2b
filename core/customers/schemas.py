"""The 360° view of a customer: profile, identifiers, consents, preferences, timeline."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from core.consents.schemas import Consent, Preferences

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
NoteChannel = Literal["agency", "call_centre", "chat"]
TimelineKind = Literal["event", "message", "note", "merge"]


class Customer(msgspec.Struct):
    id: uuid.UUID
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    language: str | None
    country: str | None
    birth_date: date | None
    postal_code: str | None
    stage: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    merged_into: uuid.UUID | None = None
    erased_at: datetime | None = None


class Identifier(msgspec.Struct):
    kind: str
    value: str
    status: str
    source: str
    first_seen: datetime
    last_seen: datetime


class Customer360(msgspec.Struct):
    profile: Customer
    identifiers: list[Identifier]
    consents: list[Consent]
    preferences: Preferences | None
    stage: str | None
    merged_ids: list[uuid.UUID]


class TimelineItem(msgspec.Struct):
    kind: TimelineKind
    at: datetime
    ref: str
    summary: str
    data: dict[str, Any]


class NoteCreate(msgspec.Struct, forbid_unknown_fields=True):
    author: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
    channel: NoteChannel
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=NO_NUL)]


class Note(msgspec.Struct):
    id: int
    customer_id: uuid.UUID
    author: str
    channel: NoteChannel
    text: str
    created_at: datetime
