"""API shapes of connectors and their sync runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

ConnectorId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,62}$",
                                          description="slug, e.g. `ticketing-export`")]
SourceName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,31}$")]
ConnectorStatus = Literal["active", "paused"]
RunStatus = Literal["queued", "running", "succeeded", "failed"]
Minutes = Annotated[int, msgspec.Meta(ge=1, le=44_640)]
Trigger = Literal["upload", "path", "webhook", "schedule", "manual"]


class Connector(msgspec.Struct, kw_only=True):
    id: str
    type: str
    mode: str
    name: str
    # The label ingested data carries (`events.source`, survivorship ranks).
    source: str
    status: ConnectorStatus
    # The instance configuration, secret fields left out (see `secrets_set`).
    config: dict[str, Any]
    secrets_set: list[str]
    schedule_minutes: int | None = None
    next_run_at: datetime | None = None
    checkpoint: dict[str, Any] | None = None
    # Push connectors: where the source posts (HMAC-signed).
    webhook_url: str | None = None
    created_at: datetime
    updated_at: datetime


class ConnectorCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: ConnectorId
    type: str
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    config: dict[str, Any]
    source: SourceName | None = None  # default: the connector id
    status: ConnectorStatus = "active"
    # Pull connectors only: sync every N minutes (at least the plugin's minimum).
    schedule_minutes: Minutes | None = None


class ConnectorUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`config` replaces the instance configuration; secret fields left out keep their
    stored value (send `null` to clear one)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | msgspec.UnsetType = \
        msgspec.UNSET
    config: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    status: ConnectorStatus | msgspec.UnsetType = msgspec.UNSET
    schedule_minutes: Minutes | msgspec.UnsetType | None = msgspec.UNSET


class RunStart(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Start a sync now. File connectors read `path`, relative to the tenant's import
    directory; pull connectors sync from their checkpoint, or from scratch with `full`."""

    path: str | None = None
    full: bool = False


class Reject(msgspec.Struct):
    line: int
    reason: str
    field: str | None = None


class Run(msgspec.Struct, kw_only=True):
    id: str
    connector_id: str
    trigger: Trigger
    status: RunStatus
    source: str
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    progress: float | None
    error: str | None
    # The first rejected rows (line, field, reason); all of them: `.../rejects`.
    error_sample: list[Reject]
    attempts: int
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None


class DeliveryItem(msgspec.Struct, omit_defaults=True):
    line: int
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    field: str | None = None


class DeliveryResult(msgspec.Struct):
    """The answer to one inbound webhook delivery."""

    run_id: str
    received: int
    accepted: int
    rejected: int
    items: list[DeliveryItem]
