"""Campaigns: one-shot sends to a segment, their schedule, variants, funnel and packages."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from core.pressure.schemas import Category, QuietAction

Purpose = Literal["marketing", "traffic_info", "loyalty", "service", "transactional"]
Status = Literal["draft", "scheduled", "running", "completed", "cancelled"]
ScheduleKind = Literal["now", "at", "local_time"]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ChannelName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
TemplateId = Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Priority = Annotated[int, msgspec.Meta(ge=0, le=100)]
ControlPercent = Annotated[float, msgspec.Meta(ge=0, le=50)]
LocalTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class Schedule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`now` (when scheduled), `at` an instant, or `local_time`: at `time` (HH:MM) on
    `date` in each customer's own time zone (else the tenant's)."""

    kind: ScheduleKind = "now"
    at: AwareDatetime | None = None
    date: date | None = None
    time: LocalTime | None = None


class Variant(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An A/B variant: `split` percent of the treated audience, with its own templates
    (per channel; channels not listed use the campaign's)."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,20}$")]
    split: Annotated[int, msgspec.Meta(ge=1, le=100)]
    templates: dict[ChannelName, TemplateId] = msgspec.field(default_factory=dict)


class CampaignFields(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What defines a campaign (shared by create, packages and adoption)."""

    name: Name
    category: Category
    purpose: Purpose
    segment_id: str
    channels: Annotated[list[ChannelName], msgspec.Meta(min_length=1, max_length=5)]
    templates: dict[ChannelName, TemplateId]
    priority: Priority = 50
    schedule: Schedule = msgspec.field(default_factory=Schedule)
    variants: list[Variant] = msgspec.field(default_factory=list)
    control_percent: ControlPercent = 0
    # None: the tenant default of the pressure policy.
    quiet_hours: QuietAction | None = None
    bypass_quiet_hours: bool = False
    pressure_exempt: bool = False
    tags: Annotated[list[Tag], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list)
    # Extra values templates can print (`event.*`).
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class CampaignCreate(CampaignFields, forbid_unknown_fields=True):
    pass


class CampaignUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Draft campaigns only (a scheduled one goes back to draft with /unschedule)."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    category: Category | msgspec.UnsetType = msgspec.UNSET
    purpose: Purpose | msgspec.UnsetType = msgspec.UNSET
    segment_id: str | msgspec.UnsetType = msgspec.UNSET
    channels: list[ChannelName] | msgspec.UnsetType = msgspec.UNSET
    templates: dict[ChannelName, TemplateId] | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    schedule: Schedule | msgspec.UnsetType = msgspec.UNSET
    variants: list[Variant] | msgspec.UnsetType = msgspec.UNSET
    control_percent: ControlPercent | msgspec.UnsetType = msgspec.UNSET
    quiet_hours: QuietAction | msgspec.UnsetType | None = msgspec.UNSET
    bypass_quiet_hours: bool | msgspec.UnsetType = msgspec.UNSET
    pressure_exempt: bool | msgspec.UnsetType = msgspec.UNSET
    tags: list[Tag] | msgspec.UnsetType = msgspec.UNSET
    data: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class Progress(msgspec.Struct):
    audience: int | None
    batches_total: int | None
    batches_done: int
    planned: int
    excluded: int
    percent: float


class Campaign(CampaignFields, omit_defaults=False):
    id: str = ""
    status: Status = "draft"
    package_id: str | None = None
    package_revision: int | None = None
    send_at: datetime | None = None
    policy_version: int | None = None
    progress: Progress | None = None
    plan_error: str | None = None
    created_at: datetime | None = None
    created_by: str = ""
    updated_at: datetime | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    planned_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None


# -- funnel ---------------------------------------------------------------------------------

class ReasonCount(msgspec.Struct):
    reason: str
    count: int


class FunnelStep(msgspec.Struct):
    step: str
    entered: int
    excluded: int
    remaining: int
    reasons: list[ReasonCount]


class Funnel(msgspec.Struct):
    campaign_id: str
    simulated: bool
    audience: int
    planned: int
    steps: list[FunnelStep]
    channels: dict[str, int]
    variants: dict[str, int]
    delayed_by_quiet_hours: int
    # Planned earlier, then displaced by a higher-priority campaign (arbitration).
    displaced: int = 0
    # Audience not yet decided (planning in progress).
    pending: int = 0


class Recipient(msgspec.Struct, omit_defaults=True):
    customer_id: str
    step: str
    reason: str | None = None
    channel: str | None = None
    variant: str | None = None
    scheduled_at: datetime | None = None
    message_id: str | None = None
    # Per channel: why that channel was not used.
    channels: dict[str, str] = msgspec.field(default_factory=dict)
    delayed_from: datetime | None = None
    decided_at: datetime | None = None


# -- HQ packages ----------------------------------------------------------------------------

Lockable = Literal["segment_id", "templates", "schedule", "variants", "channels", "priority",
                   "control_percent", "quiet_hours", "tags", "data"]


class PackageCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A campaign HQ publishes for tenants to adopt. `locked` fields cannot be changed by
    a tenant; the category, purpose and exemptions always stay HQ's. `segment_id` is
    usually a global segment."""

    id: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]
    campaign: CampaignFields
    description: str = ""
    locked: list[Lockable] = msgspec.field(default_factory=list)


class PackageUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    campaign: CampaignFields | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    locked: list[Lockable] | msgspec.UnsetType = msgspec.UNSET
    status: Literal["published", "archived"] | msgspec.UnsetType = msgspec.UNSET


class Package(msgspec.Struct):
    id: str
    campaign: CampaignFields
    description: str
    locked: list[str]
    status: str
    revision: int
    created_at: datetime
    created_by: str
    updated_at: datetime


class Adoption(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Adopt an HQ package as a draft campaign, adapting what the package leaves open
    (local template or translation, local date...)."""

    package_id: str
    name: Name | msgspec.UnsetType = msgspec.UNSET
    segment_id: str | msgspec.UnsetType = msgspec.UNSET
    templates: dict[ChannelName, TemplateId] | msgspec.UnsetType = msgspec.UNSET
    schedule: Schedule | msgspec.UnsetType = msgspec.UNSET
    variants: list[Variant] | msgspec.UnsetType = msgspec.UNSET
    channels: list[ChannelName] | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    control_percent: ControlPercent | msgspec.UnsetType = msgspec.UNSET
    quiet_hours: QuietAction | msgspec.UnsetType | None = msgspec.UNSET
    tags: list[Tag] | msgspec.UnsetType = msgspec.UNSET
    data: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
