"""HQ governance of the parameters of a global definition.

Every parameter of a global definition (a canvas threshold, a pressure cap, a template
field...) carries its default value and how far a tenant may move away from it:
`locked` (never), `overridable` (any value of the same type) or `bounded` ("overridable
within bounds": a numeric min/max and/or a list of allowed values). The checks here are
the only place those rules are enforced, so every kind of overlay behaves the same and
every error names the parameter and gives the bounds.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from core.errors import InvalidInput

Mode = Literal["locked", "overridable", "bounded"]
ParamValue = bool | int | float | str | list[str]


class Parameter(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A parameter as HQ declares it in a global version."""

    default: ParamValue
    mode: Mode = "locked"
    min: float | None = None
    max: float | None = None
    allowed: list[ParamValue] | None = None
    description: str = ""


def value_type(value: Any) -> str:
    """The JSON type family a parameter keeps across overlays."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "string_list"
    return "unsupported"


def _fits_type(expected: str, value: Any) -> bool:
    actual = value_type(value)
    if expected == "number":  # an integer is a fine value for a number parameter
        return actual in ("number", "integer")
    return actual == expected


def bounds_of(param: Parameter) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if param.min is not None:
        bounds["min"] = param.min
    if param.max is not None:
        bounds["max"] = param.max
    if param.allowed is not None:
        bounds["allowed"] = param.allowed
    return bounds


def _describe_bounds(param: Parameter) -> str:
    parts = []
    if param.min is not None and param.max is not None:
        parts.append(f"between {_num(param.min)} and {_num(param.max)}")
    elif param.min is not None:
        parts.append(f"at least {_num(param.min)}")
    elif param.max is not None:
        parts.append(f"at most {_num(param.max)}")
    if param.allowed is not None:
        parts.append(f"one of {param.allowed}")
    return " and ".join(parts)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def violation(name: str, param: Parameter, value: Any) -> str | None:
    """Why `value` may not override `name`, or None when it may. The message always
    names the parameter and, for bounded ones, the bounds."""
    expected = value_type(param.default)
    if not _fits_type(expected, value):
        return f"parameter {name!r} takes a {expected.replace('_', ' ')} value, got {value!r}"
    if param.mode == "locked":
        if value == param.default:
            return None  # restating the HQ value is harmless
        return f"parameter {name!r} is locked by HQ at {param.default!r}"
    if param.mode == "overridable":
        return None
    out_of_bounds = False
    if param.min is not None and not isinstance(value, (str, list)) and value < param.min:
        out_of_bounds = True
    if param.max is not None and not isinstance(value, (str, list)) and value > param.max:
        out_of_bounds = True
    if param.allowed is not None:
        items = value if isinstance(value, list) else [value]
        if any(item not in param.allowed for item in items):
            out_of_bounds = True
    if out_of_bounds:
        return f"parameter {name!r} must be {_describe_bounds(param)}, got {value!r}"
    return None


def check_override(name: str, param: Parameter, value: Any, field: str) -> None:
    reason = violation(name, param, value)
    if reason is not None:
        raise InvalidInput(reason, field=field, parameter=name, mode=param.mode,
                           bounds=bounds_of(param) or None)


def check_declaration(name: str, param: Parameter, field: str) -> None:
    """HQ's own declaration must be coherent: bounds fit the type, the default fits the
    bounds (otherwise no tenant could ever restate the default)."""
    kind = value_type(param.default)
    if kind == "unsupported":
        raise InvalidInput(f"parameter {name!r}: default must be a boolean, number, string "
                           "or list of strings", field=f"{field}.default")
    if (param.min is not None or param.max is not None) and kind not in ("integer", "number"):
        raise InvalidInput(f"parameter {name!r}: min/max only apply to numbers",
                           field=f"{field}.min")
    if param.min is not None and param.max is not None and param.min > param.max:
        raise InvalidInput(f"parameter {name!r}: min {_num(param.min)} is above max "
                           f"{_num(param.max)}", field=f"{field}.min")
    if param.mode == "bounded" and param.min is None and param.max is None \
            and param.allowed is None:
        raise InvalidInput(f"parameter {name!r} is bounded but declares no min, max or "
                           "allowed values", field=f"{field}.mode")
    if param.mode != "bounded" and bounds_of(param):
        raise InvalidInput(f"parameter {name!r}: bounds only apply to mode 'bounded'",
                           field=f"{field}.mode")
    if param.allowed is not None:
        element = "string" if kind == "string_list" else kind
        for i, allowed in enumerate(param.allowed):
            if not _fits_type(element, allowed):
                raise InvalidInput(f"parameter {name!r}: allowed value {allowed!r} is not a "
                                   f"{element}", field=f"{field}.allowed[{i}]")
    reason = violation(name, msgspec.structs.replace(param, mode="bounded"), param.default) \
        if param.mode == "bounded" else None
    if reason is not None:
        raise InvalidInput(f"default of {reason}", field=f"{field}.default")
