"""API shapes of lifecycle runs and stage / segment summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

RunMode = Literal["full", "incremental"]


class EvaluateRequest(msgspec.Struct, forbid_unknown_fields=True):
    mode: RunMode = "full"


class StageRun(msgspec.Struct):
    id: int
    mode: RunMode
    canvas_version: int
    status: Literal["running", "done", "failed"]
    started_at: datetime
    finished_at: datetime | None
    evaluated: int
    changed: int
    error: str | None = None


class EvaluationQueued(msgspec.Struct):
    job_id: str
    queued: bool  # False: the same evaluation was already queued or running
    mode: RunMode


class HqEvaluationQueued(msgspec.Struct):
    mode: RunMode
    tenants: int
    queued: int


class StageCount(msgspec.Struct):
    stage: str
    count: int


class SegmentCount(msgspec.Struct):
    segment_id: str
    name: str
    scope: Literal["local", "global"]
    members: int
    refreshed_at: datetime | None


class TenantSummary(msgspec.Struct):
    tenant_id: str
    canvas_version: int
    pilot: bool
    customers: int
    stages: list[StageCount]  # canvas order; `unassigned` = not evaluated yet
    segments: list[SegmentCount]
    last_run: StageRun | None = None


class HqTenantSummary(msgspec.Struct):
    tenant_id: str
    canvas_version: int
    pilot: bool
    customers: int
    stages: list[StageCount]
    global_segments: list[SegmentCount]


class HqSummary(msgspec.Struct):
    """Aggregates only: counts per stage and per global segment, per tenant and in total."""

    customers: int
    stages: list[StageCount]
    global_segments: list[SegmentCount]
    tenants: list[HqTenantSummary]
