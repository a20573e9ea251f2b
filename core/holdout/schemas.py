"""Universal holdout ("population blanche") schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=50)]
HoldoutStatus = Literal["active", "archived"]


class HoldoutCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Start a new holdout group (archiving the active one, if any). `percent` of the
    10,000 buckets is held out of all marketing from `starts_at` (default now) to
    `ends_at` (default `months` later, 6 by default)."""

    percent: Percent
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    months: Annotated[int, msgspec.Meta(ge=1, le=24)] = 6
    notes: str = ""


class HoldoutReset(msgspec.Struct, forbid_unknown_fields=True):
    """A new salt (a new random group) with the active group's percent and duration
    unless given."""

    percent: Percent | None = None
    months: Annotated[int, msgspec.Meta(ge=1, le=24)] | None = None
    notes: str = ""


class HoldoutGroup(msgspec.Struct):
    id: str
    status: HoldoutStatus
    percent: float
    buckets: int  # customers whose bucket is below this number are held out
    starts_at: datetime
    ends_at: datetime
    archived_at: datetime | None
    created_at: datetime
    created_by: str
    notes: str


class HoldoutOverview(msgspec.Struct):
    active: HoldoutGroup | None
    # Whether the active group holds customers out right now (inside its period).
    in_effect: bool


class HoldoutMembership(msgspec.Struct):
    customer_id: str
    group_id: str
    bucket: int
    held_out: bool
    in_effect: bool


class HoldoutMember(msgspec.Struct):
    customer_id: str
    bucket: int
