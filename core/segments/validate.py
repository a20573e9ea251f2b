"""Checks a definition against a vocabulary; every error names the offending node by path
(e.g. `definition.conditions[1].where[0].property`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec

from core.errors import InvalidInput
from core.identity.normalise import IDENTIFIER_KINDS
from core.segments import definition as d
from core.segments.vocabulary import Vocabulary

CONSENT_PURPOSES = ("marketing", "traffic_info", "loyalty", "service", "transactional")
MAX_NODES = 200
MAX_DEPTH = 12
_ORDERED = ("eq", "ne", "lt", "lte", "gt", "gte")
_OPS_BY_TYPE = {
    "string": {*_ORDERED, "between", "in", "not_in", "contains", "starts_with"},
    "number": {*_ORDERED, "between", "in", "not_in"},
    "boolean": {"eq", "ne"},
    "date": {*_ORDERED, "between", "in", "not_in"},
    "datetime": {*_ORDERED, "between"},
    "opaque": set(),
}
_NUMERIC_MEASURES = ("sum", "avg", "min", "max")


def family(type_: str) -> str:
    """Comparison family of a dictionary or property type."""
    return {"enum": "string", "object": "opaque", "array": "opaque"}.get(type_, type_)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def resolve_params(raw: Any, params: dict[str, Any] | None, path: str = "definition") -> Any:
    """Replace every `{"param": name}` of a JSON definition by the parameter's value."""
    if isinstance(raw, dict):
        if set(raw) == {"param"}:
            name = raw["param"]
            if params is None:
                raise InvalidInput("parameters ({\"param\": ...}) only exist in canvas "
                                   "definitions", field=path)
            if name not in params:
                raise InvalidInput(f"unknown parameter {name!r} (declared: "
                                   f"{', '.join(sorted(params)) or 'none'})", field=path)
            if not is_number(params[name]):
                raise InvalidInput(f"parameter {name!r} is used as a number but is "
                                   f"{params[name]!r}", field=path)
            return params[name]
        return {k: resolve_params(v, params, f"{path}.{k}") for k, v in raw.items()}
    if isinstance(raw, list):
        return [resolve_params(v, params, f"{path}[{i}]") for i, v in enumerate(raw)]
    return raw


def parse(raw: Any, params: dict[str, Any] | None = None,
          path: str = "definition") -> d.Condition:
    """JSON (possibly with parameter references) → typed tree, or InvalidInput."""
    resolved = resolve_params(msgspec.to_builtins(raw), params, path)
    try:
        return d.decode(resolved)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        raise InvalidInput(message, field=path + where.rstrip("`")) from None


def _bad(detail: str, field: str) -> InvalidInput:
    return InvalidInput(detail, field=field)


def _check_scalar(fam: str, value: Any, field: str, enum: tuple[str, ...] | None) -> None:
    ok = {"string": lambda v: isinstance(v, str), "number": is_number,
          "boolean": lambda v: isinstance(v, bool), "date": _is_date,
          "datetime": _is_datetime}[fam](value)
    if not ok:
        expected = {"date": "a date (YYYY-MM-DD)",
                    "datetime": "a timestamp with time zone (ISO 8601)"}.get(fam, f"a {fam}")
        raise _bad(f"expected {expected}, got {value!r}", field)
    if enum is not None and value not in enum:
        raise _bad(f"{value!r} is not one of {list(enum)}", field)


def _is_date(value: Any) -> bool:
    try:
        return isinstance(value, str) and bool(date.fromisoformat(value)) and len(value) == 10
    except ValueError:
        return False


def _is_datetime(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def check_comparison(type_: str, op: str, value: Any, field: str,
                     enum: tuple[str, ...] | None = None) -> None:
    """The op suits the type and the value suits the op (shared by fields and properties)."""
    fam = family(type_)
    if op in ("is_set", "is_not_set"):
        if value is not None:
            raise _bad(f"{op} takes no value", f"{field}.value")
        return
    if op not in _OPS_BY_TYPE[fam]:
        allowed = sorted(_OPS_BY_TYPE[fam] | {"is_set", "is_not_set"})
        raise _bad(f"op {op!r} does not apply to a {type_} (use one of {allowed})",
                   f"{field}.op")
    if op in ("in", "not_in", "between"):
        if not isinstance(value, list) or not value or (op == "between" and len(value) != 2):
            raise _bad(f"{op} takes a list" + (" of two values" if op == "between" else
                                               " of values"), f"{field}.value")
        for i, item in enumerate(value):
            _check_scalar(fam, item, f"{field}.value[{i}]", enum if op != "between" else None)
        if op == "between" and value[0] > value[1]:
            raise _bad("between takes [low, high]", f"{field}.value")
        return
    _check_scalar(fam, value, f"{field}.value",
                  enum if op in ("eq", "ne") else None)


def _check_window(window: d.Window | None, field: str) -> None:
    if window is None:
        return
    for name in ("last_days", "before_days"):
        days = getattr(window, name)
        if days is not None and (days < 0 or (name == "last_days" and days == 0)):
            raise _bad(f"{name} must be positive", f"{field}.{name}")
    if window.last_days is not None and window.before_days is not None \
            and window.before_days >= window.last_days:
        raise _bad("before_days must be smaller than last_days", f"{field}.before_days")
    if window.since and window.until and window.since >= window.until:
        raise _bad("since must be before until", f"{field}.until")


def _events(node: Any, vocab: Vocabulary, field: str) -> list[str]:
    names = [node.event] if isinstance(node.event, str) else node.event
    if not names:
        raise _bad("name at least one event type", f"{field}.event")
    for name in names:
        if name not in vocab.events:
            raise _bad(f"unknown event type {name!r} (not in the event catalog)",
                       f"{field}.event")
    return names


def _property_type(names: list[str], prop: str, vocab: Vocabulary, field: str) -> str:
    types = {family(vocab.events[n][prop].type) for n in names if prop in vocab.events[n]}
    if not types:
        raise _bad(f"unknown property {prop!r} of {', '.join(names)} (not in the event "
                   "catalog)", field)
    if len(types) > 1:
        raise _bad(f"property {prop!r} has different types across {names}", field)
    return types.pop()


def _check_where(names: list[str], where: list[d.PropertyFilter], vocab: Vocabulary,
                 field: str) -> None:
    for i, f in enumerate(where):
        path = f"{field}.where[{i}]"
        type_ = _property_type(names, f.property, vocab, f"{path}.property")
        values = {tuple(vocab.events[n][f.property].values or ())
                  for n in names if f.property in vocab.events[n]}
        enum = values.pop() if len(values) == 1 and () not in values else None
        check_comparison(type_, f.op, f.value, path, enum)


def _check_thresholds(values: list | None, field: str) -> None:
    if values is None:
        return
    if len(values) != 4 or any(not is_number(v) or v < 0 for v in values) \
            or sorted(values) != list(values):
        raise _bad("give four ascending non-negative thresholds (bands 5..1)", field)


def _check_event(node: d.EventCondition, vocab: Vocabulary, path: str) -> None:
    names = _events(node, vocab, path)
    _check_window(node.window, f"{path}.window")
    _check_where(names, node.where, vocab, path)
    if node.measure in _NUMERIC_MEASURES:
        if node.property is None:
            raise _bad(f"{node.measure} needs a numeric property", f"{path}.property")
        if _property_type(names, node.property, vocab, f"{path}.property") != "number":
            raise _bad(f"{node.property!r} is not a number", f"{path}.property")
    elif node.property is not None:
        raise _bad(f"{node.measure} takes no property", f"{path}.property")
    expected = "datetime" if node.measure in ("first", "last") else "number"
    values = node.value if node.op == "between" else [node.value]
    if node.op == "between" and (not isinstance(node.value, list) or len(node.value) != 2):
        raise _bad("between takes [low, high]", f"{path}.value")
    if node.op != "between" and isinstance(node.value, list):
        raise _bad(f"{node.op} takes a single value", f"{path}.value")
    for v in values:
        if expected == "number" and not is_number(v):
            raise _bad(f"{node.measure} is compared with a number, got {v!r}", f"{path}.value")
        if expected == "datetime" and not isinstance(v, datetime):
            raise _bad(f"{node.measure} is compared with a timestamp, got {v!r}",
                       f"{path}.value")
    if node.op == "between" and values[0] > values[1]:
        raise _bad("between takes [low, high]", f"{path}.value")


def _check_rfm(node: d.RfmCondition, vocab: Vocabulary, path: str) -> None:
    names = _events(node, vocab, path)
    _check_window(node.window, f"{path}.window")
    _check_where(names, node.where, vocab, path)
    _check_thresholds(node.recency_days, f"{path}.recency_days")
    _check_thresholds(node.frequency_counts, f"{path}.frequency_counts")
    if (node.monetary_property is None) != (node.monetary_amounts is None):
        raise _bad("monetary_property and monetary_amounts go together",
                   f"{path}.monetary_amounts")
    if node.monetary_property is not None:
        _check_thresholds(node.monetary_amounts, f"{path}.monetary_amounts")
        if _property_type(names, node.monetary_property, vocab,
                          f"{path}.monetary_property") != "number":
            raise _bad(f"{node.monetary_property!r} is not a number",
                       f"{path}.monetary_property")
    elif node.monetary is not None:
        raise _bad("a monetary band needs monetary_property", f"{path}.monetary")
    for name in ("recency", "frequency", "monetary"):
        band = getattr(node, name)
        if band is not None and not 1 <= band.min <= band.max <= 5:
            raise _bad("scores go from 1 to 5, min <= max", f"{path}.{name}")


def validate(node: d.Condition, vocab: Vocabulary, *,
             segments: dict[str, d.Condition] | None = None, path: str = "definition",
             depth: int = 0) -> None:
    """Raise InvalidInput naming the first wrong node. `segments` maps the ids this tree
    may reference to their definitions (the service loads them)."""
    nodes = sum(1 for _ in d.walk(node, path))
    if nodes > MAX_NODES:
        raise _bad(f"a definition has at most {MAX_NODES} conditions", path)
    for n, where in d.walk(node, path):
        if where.count(".condition") > MAX_DEPTH:
            raise _bad(f"conditions nest at most {MAX_DEPTH} levels deep", where)
        _check_node(n, vocab, segments or {}, where)


def _check_node(n: d.Condition, vocab: Vocabulary, segments: dict[str, d.Condition],
                path: str) -> None:
    if isinstance(n, (d.And, d.Or)) and not n.conditions:
        raise _bad("conditions must not be empty", f"{path}.conditions")
    elif isinstance(n, d.FieldCondition):
        info = vocab.fields.get(n.field)
        if info is None:
            raise _bad(f"unknown field {n.field!r} (not in the data dictionary)",
                       f"{path}.field")
        check_comparison(info.type, n.op, n.value, path, info.enum_values)
    elif isinstance(n, d.IdentifierCondition) and n.kind not in IDENTIFIER_KINDS:
        raise _bad(f"unknown identifier kind {n.kind!r} (one of "
                   f"{sorted(IDENTIFIER_KINDS)})", f"{path}.kind")
    elif isinstance(n, d.ConsentCondition):
        if n.purpose not in CONSENT_PURPOSES:
            raise _bad(f"unknown purpose {n.purpose!r} (one of {list(CONSENT_PURPOSES)})",
                       f"{path}.purpose")
        if not n.channel or len(n.channel) > 64:
            raise _bad("channel must be a channel name, e.g. email", f"{path}.channel")
    elif isinstance(n, d.EventCondition):
        _check_event(n, vocab, path)
    elif isinstance(n, d.TrendCondition):
        _check_where(_events(n, vocab, path), n.where, vocab, path)
        if n.recent_days <= 0 or n.baseline_days <= 0:
            raise _bad("recent_days and baseline_days must be positive", f"{path}.recent_days")
        if n.ratio < 0:
            raise _bad("ratio must not be negative", f"{path}.ratio")
    elif isinstance(n, d.StageCondition):
        if not n.stages:
            raise _bad("name at least one stage", f"{path}.stages")
        for i, stage in enumerate(n.stages):
            if vocab.stages is not None and stage not in vocab.stages:
                raise _bad(f"unknown stage {stage!r} (stages: {sorted(vocab.stages)})",
                           f"{path}.stages[{i}]")
    elif isinstance(n, d.SegmentCondition) and n.segment_id not in segments:
        raise _bad(f"segment {n.segment_id!r} not found", f"{path}.segment_id")
    elif isinstance(n, d.BucketCondition):
        if not 0 <= n.min <= n.max <= 9999:
            raise _bad("buckets go from 0 to 9999 with min <= max", f"{path}.min")
        if len(n.seed) > 100:
            raise _bad("seed is at most 100 characters", f"{path}.seed")
    elif isinstance(n, d.RfmCondition):
        _check_rfm(n, vocab, path)


def referenced_segments(node: d.Condition) -> set[str]:
    return {n.segment_id for n, _ in d.walk(node) if isinstance(n, d.SegmentCondition)}
