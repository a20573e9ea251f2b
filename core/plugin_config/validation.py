"""Configuration validation against a plugin's own msgspec schema, with field errors."""

from __future__ import annotations

import re
import typing
from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from core.errors import InvalidInput

_NAMED = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")


def field_error(exc: msgspec.ValidationError, prefix: str) -> InvalidInput:
    """`Expected int, got str - at $.port` → InvalidInput(field="config.port")."""
    message = str(exc)
    path = ""
    if " - at `$" in message:
        message, _, location = message.rpartition(" - at `$")
        path = location.rstrip("`")
    named = _NAMED.search(message)
    if named:
        path = f"{path}.{named.group(1)}"
    field = f"{prefix}{path}"
    return InvalidInput(f"{field}: {message}", field=field)


def validate(schema: type[msgspec.Struct], values: Mapping[str, Any],
             prefix: str = "config") -> msgspec.Struct:
    try:
        return msgspec.convert(dict(values), schema)
    except msgspec.ValidationError as exc:
        raise field_error(exc, prefix) from None


def field_names(schema: type[msgspec.Struct]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(schema)]


def check_known(schema: type[msgspec.Struct], names: Collection[str], prefix: str) -> None:
    known = set(field_names(schema))
    for name in names:
        if name not in known:
            raise InvalidInput(f"{prefix}.{name}: unknown field (expected one of "
                               f"{', '.join(sorted(known)) or 'none'})",
                               field=f"{prefix}.{name}")


def validate_partial(schema: type[msgspec.Struct], values: Mapping[str, Any],
                     prefix: str) -> None:
    """Check the fields given (HQ defaults may be partial: tenants complete them) without
    requiring the others."""
    check_known(schema, values, prefix)
    partial = msgspec.defstruct(
        f"{schema.__name__}Defaults",
        [(f.name, typing.Union[f.type, msgspec.UnsetType], msgspec.UNSET)  # noqa: UP007
         for f in msgspec.structs.fields(schema)],
        forbid_unknown_fields=True)
    try:
        msgspec.convert(dict(values), partial)
    except msgspec.ValidationError as exc:
        raise field_error(exc, prefix) from None
