"""A straightforward in-Python evaluator of segment definitions, the reference the compiled
SQL is checked against (tests) and the naive per-customer baseline of bench/segments.py.

It follows the semantics written in core/segments/definition.py, one customer at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from core.segments import definition as d
from core.segments.definition import bucket_of, days_before
from core.segments.validate import family
from core.segments.vocabulary import Vocabulary


@dataclass
class Customer:
    id: str
    fields: dict[str, Any]  # column name -> value (None when unset)
    attributes: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    identifiers: set[str] = field(default_factory=set)  # kinds
    consents: dict[tuple[str, str], str] = field(default_factory=dict)  # (channel, purpose)
    # "merged" (into another profile) or "erased": no longer anyone's member, though its
    # rows (events...) are still there
    gone: str | None = None


@dataclass
class Event:
    type: str
    occurred_at: datetime
    properties: dict[str, Any]


def _typed(fam: str, value: Any) -> Any:
    """The value as stored JSON, if it has the type the dictionary says, else None."""
    if fam == "number":
        return float(value) if isinstance(value, (int, float)) and not isinstance(
            value, bool) else None
    if fam == "boolean":
        return value if isinstance(value, bool) else None
    if fam == "opaque":
        return value
    return value if isinstance(value, str) else None


def compare(actual: Any, fam: str, op: str, value: Any) -> bool:
    if op == "is_set":
        return actual is not None
    if op == "is_not_set":
        return actual is None
    if actual is None:
        return False
    conv = {"number": float, "date": date.fromisoformat,
            "datetime": datetime.fromisoformat}.get(fam, lambda v: v)
    if isinstance(actual, date) and not isinstance(actual, datetime) and fam == "string":
        conv = str  # dates stored in attributes compare as ISO text
    if op in ("in", "not_in"):
        inside = actual in [conv(v) for v in value]
        return inside if op == "in" else not inside
    if op == "between":
        return conv(value[0]) <= actual <= conv(value[1])
    if op == "contains":
        return value in actual
    if op == "starts_with":
        return actual.startswith(value)
    v = conv(value)
    return {"eq": actual == v, "ne": actual != v, "lt": actual < v, "lte": actual <= v,
            "gt": actual > v, "gte": actual >= v}[op]


class Evaluator:
    def __init__(self, vocab: Vocabulary, now: datetime,
                 segments: dict[str, d.Condition] | None = None) -> None:
        self.vocab, self.now, self.segments = vocab, now, segments or {}

    def members(self, node: d.Condition, customers: Iterable[Customer]) -> set[str]:
        return {c.id for c in customers if c.gone is None and self.matches(node, c)}

    def matches(self, node: d.Condition, c: Customer) -> bool:
        match node:
            case d.And(conditions=children):
                return all(self.matches(x, c) for x in children)
            case d.Or(conditions=children):
                return any(self.matches(x, c) for x in children)
            case d.Not(condition=child):
                return not self.matches(child, c)
            case d.Everyone():
                return True
            case d.FieldCondition():
                info = self.vocab.fields[node.field]
                fam = family(info.type)
                if info.column:
                    return compare(c.fields.get(node.field), fam, node.op, node.value)
                raw = _typed("string" if fam == "date" else fam, c.attributes.get(node.field))
                return compare(raw, "string" if fam == "date" else fam, node.op, node.value)
            case d.IdentifierCondition():
                return (node.kind in c.identifiers) == node.present
            case d.ConsentCondition():
                status = c.consents.get((node.channel, node.purpose), "unknown")
                return status == node.status
            case d.EventCondition():
                return self._event(node, c)
            case d.TrendCondition():
                recent_start = days_before(self.now, node.recent_days)
                base_start = days_before(self.now, node.recent_days + node.baseline_days)
                chosen = self._filter(c, node.event, None, node.where)
                recent = sum(1 for e in chosen if e.occurred_at >= recent_start)
                base = sum(1 for e in chosen if base_start <= e.occurred_at < recent_start)
                left, right = recent * float(node.baseline_days), \
                    float(node.ratio) * base * float(node.recent_days)
                return base > 0 and compare(left, "number", node.op, right)
            case d.StageCondition():
                return c.fields.get("stage") in node.stages
            case d.SegmentCondition():
                return self.matches(self.segments[node.segment_id], c)
            case d.BucketCondition():
                return node.min <= bucket_of(node.seed, c.id) <= node.max
            case d.RfmCondition():
                return self._rfm(node, c)
        raise TypeError(type(node).__name__)

    def _filter(self, c: Customer, events: str | list[str], window: d.Window | None,
                where: list[d.PropertyFilter]) -> list[Event]:
        names = [events] if isinstance(events, str) else events
        out = []
        for e in c.events:
            if e.type not in names or not self._in_window(e.occurred_at, window):
                continue
            if all(self._property_ok(e, names, f) for f in where):
                out.append(e)
        return out

    def _in_window(self, t: datetime, w: d.Window | None) -> bool:
        if w is None:
            return True
        if w.last_days is not None and t < days_before(self.now, w.last_days):
            return False
        if w.before_days is not None and t >= days_before(self.now, w.before_days):
            return False
        if w.since is not None and t < w.since:
            return False
        return not (w.until is not None and t >= w.until)

    def _property_ok(self, e: Event, names: list[str], f: d.PropertyFilter) -> bool:
        spec = next(self.vocab.events[n][f.property] for n in names
                    if f.property in self.vocab.events[n])
        fam = family(spec.type)
        actual = _typed(fam if fam in ("number", "boolean", "opaque") else "string",
                        e.properties.get(f.property))
        fam = fam if fam in ("number", "boolean", "opaque") else "string"
        return compare(actual, fam, f.op, f.value)

    def _numbers(self, events: list[Event], prop: str) -> list[float]:
        return [v for v in (_typed("number", e.properties.get(prop)) for e in events)
                if v is not None]

    def _event(self, node: d.EventCondition, c: Customer) -> bool:
        chosen = self._filter(c, node.event, node.window, node.where)
        m = node.measure
        if m == "count":
            return compare(len(chosen), "number", node.op, node.value)
        if m in ("sum", "avg", "min", "max"):
            values = self._numbers(chosen, node.property or "")
            if m == "sum":
                actual: Any = sum(values)
            elif not values:
                return False
            else:
                actual = {"avg": lambda v: sum(v) / len(v), "min": min, "max": max}[m](values)
            return compare(actual, "number", node.op, node.value)
        if not chosen:
            return False
        times = [e.occurred_at for e in chosen]
        t = min(times) if m in ("first", "days_since_first") else max(times)
        if m in ("first", "last"):
            return compare(t, "time", node.op, node.value)
        # "days since": compare the elapsed time with the given number of days
        elapsed, values = self.now - t, node.value if node.op == "between" else [node.value]
        limits = [self.now - days_before(self.now, v) for v in values]
        if node.op == "between":
            return limits[0] <= elapsed <= limits[1]
        return compare(elapsed, "time", node.op, limits[0])

    def _rfm(self, node: d.RfmCondition, c: Customer) -> bool:
        chosen = self._filter(c, node.event, node.window, node.where)
        checks = []
        if node.recency is not None:
            if chosen:
                last = max(e.occurred_at for e in chosen)
                score = 5 - sum(1 for t in node.recency_days
                                if last < days_before(self.now, t))
            else:
                score = 1
            checks.append(node.recency.min <= score <= node.recency.max)
        if node.frequency is not None:
            score = 1 + sum(1 for t in node.frequency_counts if len(chosen) >= t)
            checks.append(node.frequency.min <= score <= node.frequency.max)
        if node.monetary is not None and node.monetary_property and node.monetary_amounts:
            total = sum(self._numbers(chosen, node.monetary_property))
            score = 1 + sum(1 for t in node.monetary_amounts if total >= t)
            checks.append(node.monetary.min <= score <= node.monetary.max)
        return all(checks)
