"""Validation of profile traits against the data dictionary and of event properties
against the tracking plan. Pure functions: they return problems, callers decide whether a
problem rejects the item, quarantines it or fails the request."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from core.model.schemas import FieldDef, PropertySpec

MAX_STRING = 1000
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# Builtin columns with a stricter shape than their dictionary type.
_PATTERNS = {"language": (_LANGUAGE, "a BCP 47 tag such as fr or fr-FR"),
             "country": (_COUNTRY, "an ISO 3166-1 alpha-2 code such as FR")}
BUILTIN_IDENTIFIER_FIELDS = frozenset({"email", "phone"})


class Problem(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def check_trait(field: FieldDef, value: Any) -> Any:
    """The value to store (dates as `date` for builtins, ISO text in attributes), or
    raises `Problem`. `None` clears an optional field."""
    name = field.name
    if value is None:
        if field.required:
            raise Problem(name, "is required and cannot be cleared")
        return None
    kind = field.type
    if kind in ("string", "enum"):
        if not isinstance(value, str):
            raise Problem(name, f"must be a string, not {_type_name(value)}")
        value = value.strip()
        if "\x00" in value:
            raise Problem(name, "contains a NUL character")
        if len(value) > MAX_STRING:
            raise Problem(name, f"is longer than {MAX_STRING} characters")
        if kind == "enum" and value not in (field.enum_values or ()):
            raise Problem(name, f"must be one of {', '.join(field.enum_values or ())}")
        if field.builtin and name in _PATTERNS:
            pattern, shape = _PATTERNS[name]
            if not pattern.match(value):
                raise Problem(name, f"must be {shape}")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Problem(name, f"must be a number, not {_type_name(value)}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise Problem(name, f"must be true or false, not {_type_name(value)}")
        return value
    if kind == "date":
        parsed = _date(value)
        if parsed is None:
            raise Problem(name, "must be a date written YYYY-MM-DD")
        return parsed if field.builtin else parsed.isoformat()
    raise Problem(name, f"has an unsupported type {kind}")


def check_properties(specs: dict[str, PropertySpec], properties: dict[str, Any]) -> list[Problem]:
    problems = []
    for name, spec in specs.items():
        value = properties.get(name)
        if value is None:
            if spec.required:
                problems.append(Problem(name, "is required"))
            continue
        reason = _property_problem(spec, value)
        if reason:
            problems.append(Problem(name, reason))
    return problems


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "enum": (str,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,), "date": (str,), "datetime": (str,),
}


def compile_properties(specs: dict[str, PropertySpec]) -> Callable[[dict[str, Any]], bool]:
    """A fast validity test for the hot path of ingestion: exact type checks and bounds
    only; anything unusual answers False and `check_properties` explains why."""
    plan = [(name, spec.required, _PY_TYPES[spec.type],
             frozenset(spec.values) if spec.type == "enum" else None, spec.min, spec.max,
             spec.type in ("date", "datetime"))
            for name, spec in specs.items()]

    def valid(properties: dict[str, Any]) -> bool:
        for name, required, types, values, low, high, parsed in plan:
            value = properties.get(name)
            if value is None:
                if required:
                    return False
                continue
            if value.__class__ not in types:
                return False
            if values is not None and value not in values:
                return False
            if (low is not None and value < low) or (high is not None and value > high):
                return False
            if parsed and _property_problem(specs[name], value) is not None:
                return False
        return True

    return valid


def _property_problem(spec: PropertySpec, value: Any) -> str | None:
    kind = spec.type
    if kind in ("string", "enum"):
        if not isinstance(value, str):
            return f"must be a string, not {_type_name(value)}"
        if kind == "enum" and value not in (spec.values or ()):
            return f"must be one of {', '.join(spec.values or ())}"
        return None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, not {_type_name(value)}"
        if spec.min is not None and value < spec.min:
            return f"must be at least {spec.min:g}"
        if spec.max is not None and value > spec.max:
            return f"must be at most {spec.max:g}"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "date":
        return None if _date(value) else "must be a date written YYYY-MM-DD"
    if kind == "datetime":
        return None if _datetime(value) else "must be an ISO 8601 date-time"
    if kind == "object":
        return None if isinstance(value, dict) else "must be an object"
    if kind == "array":
        return None if isinstance(value, list) else "must be an array"
    return f"has an unsupported type {kind}"


def _date(value: Any) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _type_name(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "a number", float: "a number",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)
