"""Every error leaves the API as RFC 9457 problem details (`application/problem+json`),
mapped here and nowhere else."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from core.errors import MalformedBody, RateLimited, RelaisError

PROBLEM_TYPE_BASE = "https://relais.dev/problems/"
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("relais.api")

_TITLES = {400: "Bad request", 404: "Not found", 405: "Method not allowed",
           413: "Payload too large", 415: "Unsupported media type", 429: "Too many requests"}
_SLUGS = {400: "bad-request", 404: "not-found", 405: "method-not-allowed",
          413: "payload-too-large", 415: "unsupported-media-type", 429: "rate-limited"}


def problem(request: Request, status: int, slug: str, title: str, detail: str,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def relais_error(request: Request, exc: RelaisError) -> Response:
    headers = None
    if isinstance(exc, RateLimited) and "retry_after" in exc.extra:
        headers = {"Retry-After": str(exc.extra["retry_after"])}
    if isinstance(exc, RelaisError) and exc.status == 401:
        headers = {"WWW-Authenticate": exc.extra.get("www_authenticate", 'Bearer realm="relais"')}
    extra = {k: v for k, v in exc.extra.items() if k != "www_authenticate"}
    if exc.status >= 500:
        log.error("server error", exc_info=exc)
    return problem(request, exc.status, exc.type_slug, exc.title, exc.detail, headers,
                   field=exc.field, **extra)


_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")


def _field_of(key: str) -> str:
    # Litestar reports body fields as `data.x` or via msgspec's `$.x[0].y` path.
    if key.startswith("$"):
        key = key[1:].lstrip(".")
    return "" if key == "data" else key.removeprefix("data.")


def validation_error(request: Request, exc: ValidationException) -> Response:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        message = str(item.get("message", "invalid value"))
        field = _field_of(str(item["key"])) if item.get("key") else None
        # msgspec puts the location at the end of its message: "... - at `$.name`"
        if " - at `" in message:
            message, _, location = message.partition(" - at `")
            field = _field_of(location.rstrip("`"))
        unknown = _NAMED_FIELD.search(message)
        if unknown:  # name the offending key itself, not the object holding it
            parent = "" if field in (None, "data", "") else f"{field}."
            field = parent + unknown.group(1)
        if field is None and item.get("source") == "body":
            field = "body"
        errors.append({"field": field or "body", "message": message,
                       "source": item.get("source")})
    first = errors[0] if errors else {"field": "body", "message": exc.detail}
    return problem(request, 400, "invalid-input", "Invalid input",
                   f"{first['field']}: {first['message']}", field=first["field"],
                   errors=errors or None)


def http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status >= 500:
        log.error("server error", exc_info=exc)
        return problem(request, 500, "internal", "Internal error", "unexpected error")
    detail = exc.detail or _TITLES.get(status, "error")
    if status == 400 and isinstance(exc.__cause__, SerializationException):
        return relais_error(request, MalformedBody(
            f"request body is not valid JSON: {detail}", field="body"))
    return problem(request, status, _SLUGS.get(status, "http-error"),
                   _TITLES.get(status, "Error"), detail, headers)


def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return problem(request, 500, "internal", "Internal error",
                   "unexpected error; quote the request id when reporting it")


EXCEPTION_HANDLERS = {
    RelaisError: relais_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
