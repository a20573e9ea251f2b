"""Consents (channel and purpose, with history) and contact preferences."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal

import msgspec

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
Purpose = Literal["marketing", "traffic_info", "loyalty", "service", "transactional"]
ConsentStatus = Literal["granted", "denied", "withdrawn"]
# GDPR art. 6 lawful bases.
LegalBasis = Literal["consent", "contract", "legal_obligation", "vital_interests",
                     "public_task", "legitimate_interests"]
Channel = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,31}$",
                                      description="channel id, e.g. `email`, `sms`, `push`")]


class Consent(msgspec.Struct):
    channel: str
    purpose: Purpose
    status: ConsentStatus
    legal_basis: LegalBasis
    source: str
    proof: str | None
    updated_at: datetime


class ConsentChange(msgspec.Struct, forbid_unknown_fields=True):
    channel: Channel
    purpose: Purpose
    status: ConsentStatus
    legal_basis: LegalBasis
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
    proof: Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)] | None = None
    # When the person decided (defaults to now); an older decision than the current one is
    # kept in the history without replacing the current state.
    at: datetime | None = None


class ConsentChanges(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[ConsentChange], msgspec.Meta(min_length=1, max_length=100)]


class ConsentHistoryEntry(msgspec.Struct):
    id: int
    channel: str
    purpose: Purpose
    status: ConsentStatus
    legal_basis: str
    source: str
    proof: str | None
    recorded_at: datetime
    actor: str


class QuietHours(msgspec.Struct, forbid_unknown_fields=True):
    start: time
    end: time


class Subscription(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: Literal["line", "stop"]
    ref: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]


class Preferences(msgspec.Struct):
    channels: list[str]
    language: str | None
    quiet_hours: QuietHours | None
    timezone: str | None
    subscriptions: list[Subscription]
    updated_at: datetime | None = None


class PreferencesUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Replaces the preferences. `channels` in order of preference."""

    channels: Annotated[list[Channel], msgspec.Meta(max_length=10)] = msgspec.field(
        default_factory=list)
    language: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] | \
        None = None
    quiet_hours: QuietHours | None = None
    timezone: str | None = None
    subscriptions: Annotated[list[Subscription], msgspec.Meta(max_length=200)] = msgspec.field(
        default_factory=list)
