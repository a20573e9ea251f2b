"""One error hierarchy for the whole platform.

Services raise these; `api/problems.py` maps them to RFC 9457 problem details in one place,
and the CLI prints them as one line. `status` is the HTTP status the API answers with.
"""

from __future__ import annotations

from typing import Any


class RelaisError(Exception):
    status: int = 500
    title: str = "Internal error"
    type_slug: str = "internal"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class ConfigurationError(RelaisError):
    title = "Configuration error"
    type_slug = "configuration"


class InvalidInput(RelaisError):
    """A request value is wrong; `field` names it (dotted path, e.g. `items[3].email`)."""

    status = 422
    title = "Invalid input"
    type_slug = "invalid-input"


class MalformedBody(RelaisError):
    """The body is not parseable at all (broken JSON): nothing in it can be named."""

    status = 400
    title = "Malformed body"
    type_slug = "malformed-body"


class Unauthenticated(RelaisError):
    status = 401
    title = "Unauthenticated"
    type_slug = "unauthenticated"


class Forbidden(RelaisError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(RelaisError):
    """Missing, or belonging to another tenant: callers must not be able to tell which."""

    status = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(RelaisError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class PayloadTooLarge(RelaisError):
    status = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class RateLimited(RelaisError):
    status = 429
    title = "Too many requests"
    type_slug = "rate-limited"


class ServiceUnavailable(RelaisError):
    status = 503
    title = "Service unavailable"
    type_slug = "unavailable"
