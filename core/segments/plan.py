"""Which conditions need a customer to have rows in a related table.

`requires_row(node, "ev")` is true when `node` is false for every customer without any
aggregated event row (likewise `idn` for identifiers, `cns` for consents). The compiler
uses it to filter such a table's per-customer aggregate before the join and to make the
join an inner one: "at least 10 trips on T1" then joins 200 customers, not a million.
"""

from __future__ import annotations

from core.segments import definition as d

_OPS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b}


def _compare(actual: float, op: str, value: object) -> bool:
    if op == "between":
        low, high = value  # type: ignore[misc]
        return low <= actual <= high
    return _OPS[op](actual, value)


def _event_holds_without_events(node: d.EventCondition) -> bool:
    if node.measure in ("count", "sum"):  # 0 without events; every other measure is unset
        return _compare(0, node.op, node.value)
    return False


def _rfm_holds_without_events(node: d.RfmCondition) -> bool:
    scores = {"recency": 1,
              "frequency": 1 + sum(1 for t in node.frequency_counts if t <= 0),
              "monetary": 1 + sum(1 for t in node.monetary_amounts or () if t <= 0)}
    for name, score in scores.items():
        band = getattr(node, name)
        if band is not None and not band.min <= score <= band.max:
            return False
    return True


def requires_row(node: d.Condition, source: str,
                 segments: dict[str, d.Condition] | None = None) -> bool:
    match node:
        case d.And(conditions=children):
            return any(requires_row(c, source, segments) for c in children)
        case d.Or(conditions=children):
            return all(requires_row(c, source, segments) for c in children)
        case d.IdentifierCondition():
            return source == "idn" and node.present
        case d.ConsentCondition():
            return source == "cns" and node.status != "unknown"
        case d.EventCondition():
            return source == "ev" and not _event_holds_without_events(node)
        case d.TrendCondition():
            return source == "ev"
        case d.RfmCondition():
            return source == "ev" and not _rfm_holds_without_events(node)
        case d.SegmentCondition() if segments and node.segment_id in segments:
            return requires_row(segments[node.segment_id], source, segments)
    return False  # not, all, fields, stages, buckets: true without any row is possible


def conjuncts(node: d.Condition) -> list[d.Condition]:
    """The top-level AND, flattened."""
    if isinstance(node, d.And):
        return [part for child in node.conditions for part in conjuncts(child)]
    return [node]
