"""Shared types for outbound channel senders.

A sender speaks one provider protocol and nothing else: no database, no retries, no consent or
pressure checks. It turns an `OutboundMessage` into a provider call and either returns a
`SendResult` or raises a classified `ChannelError`, so the dispatcher can decide between
"retry later" (`TransientSendError`) and "give up / suppress" (`PermanentSendError`).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

import msgspec

__all__ = [
    "ChannelError",
    "ChannelSender",
    "ErrorCode",
    "OutboundMessage",
    "PermanentSendError",
    "SendResult",
    "TransientSendError",
]

REDACTED = "***"


class OutboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One rendered message for one recipient on one channel."""

    # Deterministic (tenant, source step, customer, occurrence): a retried job produces the
    # same id, which we pass to providers as an idempotency/dedup key where they allow it.
    message_id: str
    tenant_id: str
    channel: str
    # Email address, E.164 phone number or push device token; unused by webhooks.
    to: str
    text: str
    category: str
    subject: str | None = None
    html: str | None = None
    whatsapp_template: str | None = None
    whatsapp_language: str | None = None
    template_params: list[str] = msgspec.field(default_factory=list)
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    # Extra payload: push data, webhook body fields. String values only, as FCM requires.
    data: dict[str, str] = msgspec.field(default_factory=dict)


class SendResult(msgspec.Struct):
    provider_message_id: str | None
    # "sent": handed to the next hop (SMTP relay, webhook receiver) which took responsibility;
    # "accepted": queued by a provider that reports delivery asynchronously.
    status: Literal["sent", "accepted"]


class ErrorCode(enum.StrEnum):
    """Machine codes shared by all channels so the dispatcher can act without parsing text."""

    INVALID_RECIPIENT = "invalid_recipient"  # bad address / number / token: suppress it
    RECIPIENT_OPTED_OUT = "recipient_opted_out"  # provider-side opt-out (e.g. SMS STOP)
    AUTH_FAILED = "auth_failed"  # tenant credentials are wrong or expired
    SENDER_REFUSED = "sender_refused"  # configured sender identity not accepted
    INVALID_REQUEST = "invalid_request"  # payload/template the provider will never accept
    REJECTED = "rejected"  # content refused (spam filter, policy)
    CONFIG_ERROR = "config_error"  # tenant configuration cannot work (e.g. no STARTTLS)
    ENDPOINT_GONE = "endpoint_gone"  # HTTP 410 from a webhook receiver: disable the endpoint
    UNEXPECTED_RESPONSE = "unexpected_response"  # a 1xx/3xx or unparsable success answer
    RATE_LIMITED = "rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    DEFERRED = "deferred"  # SMTP 4xx: greylisting, mailbox temporarily unavailable
    NETWORK_ERROR = "network_error"
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"


class ChannelError(Exception):
    """A classified send failure. `code` is for machines, `reason` for humans."""

    def __init__(self, code: str, reason: str, *, provider_code: str | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        # The provider's own error code (Twilio 21211, Graph 131026, FCM UNREGISTERED, SMTP
        # 550...), kept verbatim for contact history and support.
        self.provider_code = provider_code


class PermanentSendError(ChannelError):
    """Retrying the same message cannot succeed."""


class TransientSendError(ChannelError):
    """Retrying later may succeed; `retry_after` (seconds) is the provider's hint, if any."""

    def __init__(
        self,
        code: str,
        reason: str,
        *,
        provider_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, reason, provider_code=provider_code)
        self.retry_after = retry_after


ConfigT = TypeVar("ConfigT", bound=msgspec.Struct)


class ChannelSender(abc.ABC, Generic[ConfigT]):
    """One provider protocol, configured per tenant.

    Use as `async with Sender(config) as sender: await sender.send(message)`. The context
    holds a reusable connection (SMTP session, HTTP connection pool) so a batch of sends pays
    the connection setup once.
    """

    name: ClassVar[str]
    # Per-tenant configuration schema; the plugin layer validates stored config against it.
    Config: ClassVar[type[msgspec.Struct]]
    # Config fields holding secrets: masked by `redact_config`, encrypted at rest upstream.
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ConfigT) -> None:
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}")
        self.config: ConfigT = config

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any] | bytes | str) -> msgspec.Struct:
        """Validate raw config (a mapping or JSON); raises `msgspec.ValidationError`."""
        if isinstance(raw, bytes | str):
            return msgspec.json.decode(raw, type=cls.Config)
        return msgspec.convert(dict(raw), cls.Config)

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | bytes | str) -> Self:
        return cls(cls.parse_config(raw))  # type: ignore[arg-type]

    @classmethod
    def redact_config(cls, config: msgspec.Struct) -> dict[str, Any]:
        """Config as builtins with secret values masked, safe for logs and API answers."""
        raw: dict[str, Any] = msgspec.to_builtins(config)
        return {
            key: (REDACTED if key in cls.secret_fields and value is not None else value)
            for key, value in raw.items()
        }

    def __repr__(self) -> str:
        # Never the config: it holds credentials.
        return f"<{type(self).__name__} {self.name}>"

    async def open(self) -> None:
        """Open the reusable connection."""

    async def close(self) -> None:
        """Release the connection; safe to call twice."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; raise `PermanentSendError` or `TransientSendError` on failure."""
