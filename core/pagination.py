"""Cursor pagination shared by every list endpoint.

A cursor is the opaque, URL-safe encoding of the sort key of the last item returned; the
next page starts strictly after it, so inserts between calls never shift or repeat items.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Generic, TypeVar

import msgspec

from core.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")


def decode_cursor(cursor: str | None, type_: Any = Any) -> Any:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=type_)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidInput("cursor is not a value returned by this endpoint",
                           field="cursor") from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


def page_of(rows: list[T], limit: int, key_of) -> Page[T]:
    """`rows` was fetched with `limit + 1`: the extra row only says another page exists."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(items=rows, next_cursor=encode_cursor(key_of(rows[-1])))
    return Page(items=rows)
