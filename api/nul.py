"""PostgreSQL text and jsonb cannot hold the NUL character, so input carrying one is
answered before the handler runs instead of failing in the database as a 500: a path
parameter (`%00`) names no object (404), a query parameter or a JSON body string or key
(`\\u0000`) is invalid input (422), each naming the parameter or field.

The ingestion routes refuse such items one by one themselves (a batch keeps its other
items): they opt out with `opt={"accepts_nul": True}`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request

from core.errors import InvalidInput, NotFound

# An escape for U+0000 in JSON text: `\u0000` preceded by an even number of backslashes
# (`\\u0000` is a backslash followed by the letters "u0000", which is fine).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _path_to_nul(value: Any, path: str = "") -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return where.replace("\x00", "\\u0000")
            found = _path_to_nul(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _path_to_nul(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


async def refuse_nul(request: Request) -> None:
    """Litestar `before_request` hook (the body read here is cached for the handler)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise NotFound(f"no object has this {name}", field=name)
    for name, value in request.query_params.multi_items():
        if "\x00" in value:
            raise InvalidInput("text cannot contain the NUL character", field=name)
    if request.route_handler.opt.get("accepts_nul") or \
            request.content_type[0] != "application/json":
        return
    body = await request.body()
    if not _ESCAPED_NUL.search(body):
        return
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return  # malformed JSON: the handler's decoding answers it
    field = _path_to_nul(value)
    if field is not None:
        raise InvalidInput("text cannot contain the NUL character (\\u0000)",
                           field=field or "body")
