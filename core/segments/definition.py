"""The segment definition language: a typed tree that is also the JSON API format.

Every node is a msgspec struct tagged by `type`. The same language builds segments, the
stage rules of the lifecycle canvas and anything else that needs "which customers". A
definition is checked by `core.segments.validate` against the tenant's data dictionary and
event catalog, then compiled to one set-based SQL query by `core.segments.compiler`.

Semantics, shared by the compiler and the reference evaluator of the tests:
- every condition is true or false for a customer, never unknown: a comparison on a missing
  value (unset field, no events for min/avg/first/last...) is false, and `not` flips it;
- `count` and `sum` of nothing are 0; times are compared against the evaluation instant
  (`now`), windows include their start and exclude their end;
- numbers inside canvas definitions may be `{"param": "name"}`, resolved from the
  effective parameters (global version ⊕ tenant overlay) before compiling.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec


class ParamRef(msgspec.Struct, forbid_unknown_fields=True):
    """A tunable number of a canvas definition, e.g. `{"param": "inactive_days"}`."""

    param: str


AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Num = int | float | ParamRef
Scalar = bool | int | float | str
Value = Scalar | list[Scalar] | ParamRef | None
TimeValue = int | float | ParamRef | AwareDatetime | list[int | float | ParamRef | AwareDatetime]

CompareOp = Literal["eq", "ne", "lt", "lte", "gt", "gte", "between"]
FieldOp = Literal["eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "not_in",
                  "contains", "starts_with", "is_set", "is_not_set"]
Measure = Literal["count", "sum", "avg", "min", "max", "first", "last",
                  "days_since_first", "days_since_last"]
ConsentStatus = Literal["granted", "denied", "withdrawn", "unknown"]

_NODE = {"tag_field": "type", "forbid_unknown_fields": True, "omit_defaults": True}


class Window(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Which events count. Relative bounds move with `now`: `last_days: 30` is the last 30
    days; `last_days: 120, before_days: 30` is from 120 to 30 days ago. Absolute bounds:
    `since` (included) and `until` (excluded). Bounds combine with AND."""

    last_days: Num | None = None
    before_days: Num | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class PropertyFilter(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A test on one property of the event, e.g. `{"property": "line", "op": "eq",
    "value": "T1"}`; all filters of an event condition must hold."""

    property: str
    op: FieldOp = "eq"
    value: Value = None


class And(msgspec.Struct, tag="and", **_NODE):
    conditions: list[Condition]


class Or(msgspec.Struct, tag="or", **_NODE):
    conditions: list[Condition]


class Not(msgspec.Struct, tag="not", **_NODE):
    condition: Condition


class Everyone(msgspec.Struct, tag="all", **_NODE):
    """True for every customer (e.g. the fallback stage of a canvas)."""


class FieldCondition(msgspec.Struct, tag="field", **_NODE):
    """A core field (`country`, `birth_date`, `stage`, `created_at`...) or an extension
    field of the data dictionary (stored in `attributes`)."""

    field: str
    op: FieldOp = "eq"
    value: Value = None


class IdentifierCondition(msgspec.Struct, tag="identifier", **_NODE):
    kind: str
    present: bool = True


class ConsentCondition(msgspec.Struct, tag="consent", **_NODE):
    """Consent state for one channel x purpose; `unknown` = nothing recorded."""

    channel: str
    purpose: str
    status: ConsentStatus = "granted"


class EventCondition(msgspec.Struct, tag="event", **_NODE):
    """An aggregate of the customer's events compared with a value, e.g. at least 10
    `trip_validated` on line T1 in the last 30 days:
    `{"type": "event", "event": "trip_validated", "op": "gte", "value": 10,
      "window": {"last_days": 30}, "where": [{"property": "line", "value": "T1"}]}`.
    `sum`/`avg`/`min`/`max` need a numeric `property`; `first`/`last` compare with a
    timestamp; `days_since_first`/`days_since_last` with a number of days."""

    event: str | list[str]
    measure: Measure = "count"
    property: str | None = None
    op: CompareOp = "gte"
    value: TimeValue | None = None
    window: Window | None = None
    where: list[PropertyFilter] = msgspec.field(default_factory=list)


class TrendCondition(msgspec.Struct, tag="trend", **_NODE):
    """The event rate over the last `recent_days` compared with `ratio` x the rate over
    the `baseline_days` before them; false without baseline activity. The canvas' fragile
    stage: trips in the last 30 days below half the previous 90-day average."""

    event: str | list[str]
    recent_days: Num = 30
    baseline_days: Num = 90
    op: Literal["lt", "lte", "gt", "gte"] = "lt"
    ratio: Num = 0.5
    where: list[PropertyFilter] = msgspec.field(default_factory=list)


class StageCondition(msgspec.Struct, tag="stage", **_NODE):
    """The customer's current lifecycle stage is one of `stages`."""

    stages: list[str]


class SegmentCondition(msgspec.Struct, tag="segment", **_NODE):
    """Member of another segment (evaluated live from its definition, so a preview and a
    refresh see the same thing)."""

    segment_id: str


class BucketCondition(msgspec.Struct, tag="bucket", **_NODE):
    """Deterministic bucket of md5(seed ‖ customer id) in 0-9999, `min`..`max` included:
    stable random samples (0-999 is 10%)."""

    min: int = 0
    max: int = 9999
    seed: str = ""


class ScoreRange(msgspec.Struct, forbid_unknown_fields=True):
    min: int = 1
    max: int = 5


class RfmCondition(msgspec.Struct, tag="rfm", **_NODE):
    """RFM bands, each score 1-5 from four ascending thresholds. Recency: 5 when the last
    event is within `recency_days[0]` days ... 1 beyond `recency_days[3]` or never.
    Frequency (count) and monetary (sum of `monetary_property`): 1 + the number of
    thresholds reached. Unset score ranges accept every score."""

    event: str | list[str]
    recency_days: list[Num]
    frequency_counts: list[Num]
    monetary_property: str | None = None
    monetary_amounts: list[Num] | None = None
    window: Window | None = None
    where: list[PropertyFilter] = msgspec.field(default_factory=list)
    recency: ScoreRange | None = None
    frequency: ScoreRange | None = None
    monetary: ScoreRange | None = None


Condition = (And | Or | Not | Everyone | FieldCondition | IdentifierCondition
             | ConsentCondition | EventCondition | TrendCondition | StageCondition
             | SegmentCondition | BucketCondition | RfmCondition)


def decode(raw: object) -> Condition:
    return msgspec.convert(raw, Condition)


def walk(node: Condition, path: str = "definition"):
    """Yield (node, path) depth-first; paths match the `field` of validation errors."""
    yield node, path
    if isinstance(node, (And, Or)):
        for i, child in enumerate(node.conditions):
            yield from walk(child, f"{path}.conditions[{i}]")
    elif isinstance(node, Not):
        yield from walk(node.condition, f"{path}.condition")


def days_before(now: datetime, days: float) -> datetime:
    """The one place relative windows become instants (compiler and test evaluator)."""
    return now - timedelta(days=days)


def bucket_of(seed: str, customer_id: str) -> int:
    """Python twin of the compiled bucket expression: md5(seed || id), first 32 bits."""
    return int(hashlib.md5((seed + customer_id).encode()).hexdigest()[:8], 16) % 10000
