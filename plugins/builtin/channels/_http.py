"""HTTP plumbing shared by the HTTP providers: client lifecycle and error classification."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
import msgspec

from .base import (
    ChannelError,
    ChannelSender,
    ConfigT,
    ErrorCode,
    PermanentSendError,
    TransientSendError,
)

__all__ = [
    "HttpChannelSender",
    "body_excerpt",
    "error_for_http_status",
    "http_error",
    "json_or_none",
    "parse_retry_after",
]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse an HTTP Retry-After value (delta-seconds or HTTP-date) into seconds from now."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; be lenient with naive ones
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def error_for_http_status(
    status: int,
    reason: str,
    *,
    provider_code: str | None = None,
    retry_after: float | None = None,
) -> ChannelError:
    """Default HTTP classification, used when a provider-specific code does not decide."""
    if status == 429:
        return TransientSendError(
            ErrorCode.RATE_LIMITED, reason, provider_code=provider_code, retry_after=retry_after
        )
    if status in (408, 425):
        return TransientSendError(
            ErrorCode.TIMEOUT, reason, provider_code=provider_code, retry_after=retry_after
        )
    if status >= 500:
        return TransientSendError(
            ErrorCode.PROVIDER_UNAVAILABLE,
            reason,
            provider_code=provider_code,
            retry_after=retry_after,
        )
    if status in (401, 403):
        return PermanentSendError(ErrorCode.AUTH_FAILED, reason, provider_code=provider_code)
    if 400 <= status < 500:
        return PermanentSendError(ErrorCode.INVALID_REQUEST, reason, provider_code=provider_code)
    # 1xx/3xx: we never follow redirects, since that could leak credentials to another host.
    return PermanentSendError(ErrorCode.UNEXPECTED_RESPONSE, reason, provider_code=provider_code)


class HttpChannelSender(ChannelSender[ConfigT]):
    """Lifecycle and transport-error mapping shared by the HTTP providers.

    Configs of HTTP senders must have a `timeout: float` field.
    """

    user_agent: ClassVar[str] = "Relais/0.1"

    def __init__(self, config: ConfigT) -> None:
        super().__init__(config)
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=float(getattr(self.config, "timeout", 10.0)),
                follow_redirects=False,
                headers={"User-Agent": self.user_agent},
            )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # Failing loudly beats a hidden per-send client: that would leak sockets and
            # silently lose connection reuse.
            raise RuntimeError(f"{type(self).__name__} is not open; use `async with sender:`")
        return self._client

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientSendError(
                ErrorCode.TIMEOUT, f"{type(exc).__name__} on {method}"
            ) from exc
        except httpx.TransportError as exc:
            raise TransientSendError(
                ErrorCode.NETWORK_ERROR, f"{type(exc).__name__}: {exc}"[:300]
            ) from exc


def json_or_none(response: httpx.Response) -> Any:
    """The decoded JSON answer, or None when the body is not JSON (e.g. a proxy's HTML 502)."""
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None


def http_error(
    response: httpx.Response,
    reason: str,
    *,
    known: tuple[type[ChannelError], str] | None = None,
    provider_code: str | None = None,
) -> ChannelError:
    """The error for a failed HTTP answer: the provider-specific classification (`known`,
    from its error code) when there is one, else the status-based default."""
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if known is None:
        return error_for_http_status(
            response.status_code, reason, provider_code=provider_code, retry_after=retry_after
        )
    kind, code = known
    if issubclass(kind, TransientSendError):
        return kind(code, reason, provider_code=provider_code, retry_after=retry_after)
    return kind(code, reason, provider_code=provider_code)


def body_excerpt(response: httpx.Response, limit: int = 200) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] if text else f"HTTP {response.status_code}"
