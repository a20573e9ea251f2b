"""Signed JSON webhooks, plus the verification helper receivers use."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated, Any, ClassVar

import msgspec

from ._http import (
    HttpChannelSender,
    body_excerpt,
    http_error,
)
from .base import (
    ErrorCode,
    OutboundMessage,
    PermanentSendError,
    SendResult,
)

__all__ = [
    "MESSAGE_ID_HEADER",
    "SIGNATURE_HEADER",
    "WebhookConfig",
    "WebhookSender",
    "build_body",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Relais-Signature"
MESSAGE_ID_HEADER = "X-Relais-Message-Id"
DEFAULT_TOLERANCE_S = 300.0


class WebhookConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    secret: str
    # Extra headers, e.g. a receiver's own API key: treated as secret.
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0


def build_body(message: OutboundMessage) -> bytes:
    body: dict[str, Any] = {
        "message_id": message.message_id,
        "tenant_id": message.tenant_id,
        "category": message.category,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "data": message.data,
    }
    return msgspec.json.encode(body)


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The signature header value: `t=<unix>,v1=<hex hmac-sha256 of "t.body">`.

    The timestamp is inside the MAC so a captured request cannot be replayed later than the
    receiver's tolerance.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """Check a `X-Relais-Signature` header against the raw request body.

    Accepts several `v1=` entries (any may match), so a sender can sign with an old and a
    new secret while a rotation is under way. Compare on the raw bytes received: re-encoding
    parsed JSON would change them.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    # Check every candidate in constant time; no early exit on the first mismatch.
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    return any(matches)


class WebhookSender(HttpChannelSender[WebhookConfig]):
    """Signed JSON POST to an endpoint of the tenant or a partner tool."""

    name: ClassVar[str] = "webhook"
    Config: ClassVar[type[msgspec.Struct]] = WebhookConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"secret", "headers"})

    async def send(self, message: OutboundMessage) -> SendResult:
        cfg = self.config
        body = build_body(message)
        headers = {
            **cfg.headers,
            "Content-Type": "application/json",
            # Signed per attempt (fresh timestamp); the message id stays the same across
            # retries so receivers can deduplicate.
            SIGNATURE_HEADER: sign(cfg.secret, body, int(time.time())),
            MESSAGE_ID_HEADER: message.message_id,
        }
        response = await self._request("POST", cfg.url, content=body, headers=headers)
        if response.is_success:
            return SendResult(provider_message_id=None, status="sent")
        if response.status_code == 410:
            raise PermanentSendError(
                ErrorCode.ENDPOINT_GONE, body_excerpt(response), provider_code="410"
            )
        raise http_error(response, body_excerpt(response), provider_code=str(response.status_code))
