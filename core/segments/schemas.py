"""API shapes of segments, previews and membership."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from core.segments.definition import Condition

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
RefreshMinutes = Annotated[int, msgspec.Meta(ge=5, le=10080, description=(
    "refresh every N minutes (5 to 10080); null: only on demand"))]
SampleSize = Annotated[int, msgspec.Meta(ge=0, le=100)]
Scope = Literal["local", "global"]


class SegmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    definition: Condition
    description: Description = ""
    refresh_minutes: RefreshMinutes | None = 60


class SegmentUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    definition: Condition | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    refresh_minutes: RefreshMinutes | msgspec.UnsetType | None = msgspec.UNSET


class Segment(msgspec.Struct):
    id: str
    scope: Scope
    name: str
    description: str
    definition: Condition
    refresh_minutes: int | None
    status: Literal["active", "archived"]
    created_at: datetime
    updated_at: datetime
    # This tenant's materialised membership (None for HQ's view of a global segment).
    member_count: int | None = None
    refreshed_at: datetime | None = None


class PreviewRequest(msgspec.Struct, forbid_unknown_fields=True):
    definition: Condition
    sample_size: SampleSize = 10


class PreviewCustomer(msgspec.Struct):
    id: uuid.UUID
    first_name: str | None
    last_name: str | None
    email: str | None
    stage: str | None


class Preview(msgspec.Struct):
    count: int
    sample: list[PreviewCustomer]
    evaluated_at: datetime
    duration_ms: float


class TenantCount(msgspec.Struct):
    tenant_id: str
    count: int


class HqPreview(msgspec.Struct):
    """A global definition evaluated on every tenant's data: aggregates only."""

    total: int
    tenants: list[TenantCount]
    evaluated_at: datetime


class Member(msgspec.Struct):
    customer_id: uuid.UUID
    entered_at: datetime


class RefreshQueued(msgspec.Struct):
    segment_id: str
    job_id: str
    queued: bool  # False: the same refresh was already queued or running


class RefreshResult(msgspec.Struct):
    segment_id: str
    members: int
    entered: int
    exited: int
    refreshed_at: datetime
    duration_ms: float
