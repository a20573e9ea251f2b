"""SMS: a Twilio-compatible Messages API sender and a configurable HTTP gateway sender."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

import httpx
import msgspec

from ._http import (
    HttpChannelSender,
    body_excerpt,
    http_error,
    json_or_none,
)
from .base import (
    ChannelError,
    ErrorCode,
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)

__all__ = [
    "HttpGatewayConfig",
    "HttpGatewaySmsSender",
    "TwilioConfig",
    "TwilioSmsSender",
    "render_template",
]

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
Timeout = Annotated[float, msgspec.Meta(gt=0)]

# Twilio error codes (https://www.twilio.com/docs/api/errors) whose meaning is sharper than
# their HTTP status. Everything else falls back on the status.
_TWILIO_CODES: dict[int, tuple[type[ChannelError], ErrorCode]] = {
    21211: (PermanentSendError, ErrorCode.INVALID_RECIPIENT),  # invalid 'To' number
    21217: (PermanentSendError, ErrorCode.INVALID_RECIPIENT),  # number does not appear valid
    21401: (PermanentSendError, ErrorCode.INVALID_RECIPIENT),  # invalid phone number
    21612: (PermanentSendError, ErrorCode.INVALID_RECIPIENT),  # 'To' cannot be reached
    21614: (PermanentSendError, ErrorCode.INVALID_RECIPIENT),  # not a mobile number
    21408: (PermanentSendError, ErrorCode.INVALID_RECIPIENT),  # region not enabled
    21610: (PermanentSendError, ErrorCode.RECIPIENT_OPTED_OUT),  # recipient replied STOP
    21212: (PermanentSendError, ErrorCode.SENDER_REFUSED),  # invalid 'From'
    21606: (PermanentSendError, ErrorCode.SENDER_REFUSED),  # 'From' cannot send SMS
    21659: (PermanentSendError, ErrorCode.SENDER_REFUSED),  # 'From' is not a Twilio number
    20003: (PermanentSendError, ErrorCode.AUTH_FAILED),  # authentication failed
    20404: (PermanentSendError, ErrorCode.CONFIG_ERROR),  # account / resource not found
    # Rate limits sometimes come back as 400, yet waiting fixes them.
    14107: (TransientSendError, ErrorCode.RATE_LIMITED),
    20429: (TransientSendError, ErrorCode.RATE_LIMITED),
    20500: (TransientSendError, ErrorCode.PROVIDER_UNAVAILABLE),
    20503: (TransientSendError, ErrorCode.PROVIDER_UNAVAILABLE),
}


class TwilioConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account_sid: str
    auth_token: str
    from_number: str | None = None
    # Twilio picks the sender from the service's pool; then the answer status is "accepted".
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    base_url: str = "https://api.twilio.com"
    timeout: Timeout = 10.0

    def __post_init__(self) -> None:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("either from_number or messaging_service_sid is required")


class TwilioSmsSender(HttpChannelSender[TwilioConfig]):
    """SMS through the Twilio Messages API or a Twilio-compatible provider."""

    name: ClassVar[str] = "sms_twilio"
    Config: ClassVar[type[msgspec.Struct]] = TwilioConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"auth_token"})

    async def send(self, message: OutboundMessage) -> SendResult:
        if not E164.match(message.to):
            # Spares a paid API call for a number Twilio would answer 21211 to.
            raise PermanentSendError(
                ErrorCode.INVALID_RECIPIENT, f"not an E.164 number: {message.to!r}"
            )
        cfg = self.config
        form = {"To": message.to, "Body": message.text}
        if cfg.messaging_service_sid:
            form["MessagingServiceSid"] = cfg.messaging_service_sid
        if cfg.from_number:
            form["From"] = cfg.from_number
        if cfg.status_callback:
            form["StatusCallback"] = cfg.status_callback
        url = f"{cfg.base_url.rstrip('/')}/2010-04-01/Accounts/{cfg.account_sid}/Messages.json"
        response = await self._request(
            "POST", url, data=form, auth=(cfg.account_sid, cfg.auth_token)
        )
        answer = json_or_none(response)
        if response.is_success:
            sid = answer.get("sid") if isinstance(answer, dict) else None
            return SendResult(provider_message_id=sid, status="accepted")
        raise _twilio_error(response, answer)


def _twilio_error(response: httpx.Response, answer: Any) -> ChannelError:
    code = answer.get("code") if isinstance(answer, dict) else None
    message = answer.get("message") if isinstance(answer, dict) else None
    known = _TWILIO_CODES.get(code) if isinstance(code, int) else None
    return http_error(
        response,
        str(message)[:300] if message else body_excerpt(response),
        known=known,
        provider_code=str(code) if code is not None else None,
    )


_PLACEHOLDER = re.compile(r"\{(to|text|message_id)\}")


def render_template(template: Any, values: dict[str, str]) -> Any:
    """Fill `{to}`, `{text}`, `{message_id}` in every string of a JSON-like template.

    One regex pass, not str.format: message text may itself contain braces or a literal
    "{to}", which must come out verbatim.
    """
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    if isinstance(template, dict):
        return {key: render_template(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render_template(value, values) for value in template]
    return template


def _dig(answer: Any, path: str) -> str | None:
    node = answer
    for step in path.split("."):
        if isinstance(node, dict):
            node = node.get(step)
        elif (
            isinstance(node, list)
            and step.lstrip("-").isdigit()
            and -len(node) <= int(step) < len(node)
        ):
            node = node[int(step)]
        else:
            return None
    return None if node is None or isinstance(node, dict | list) else str(node)


class HttpGatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    method: Literal["POST", "PUT", "GET"] = "POST"
    # Usually carries the gateway credentials (Authorization, X-Api-Key): all secret.
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    # GET sends the rendered template as query parameters.
    body_format: Literal["json", "form"] = "json"
    body_template: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"to": "{to}", "text": "{text}", "message_id": "{message_id}"}
    )
    # Dotted path to the provider's id in the JSON answer, list indexes allowed:
    # "id", "data.message_id", "messages.0.id".
    id_path: str | None = None
    timeout: Timeout = 10.0

    def __post_init__(self) -> None:
        flat = self.body_format == "form" or self.method == "GET"
        if flat and not all(isinstance(v, str) for v in self.body_template.values()):
            raise ValueError("form and query templates must map names to strings")


class HttpGatewaySmsSender(HttpChannelSender[HttpGatewayConfig]):
    """SMS through any HTTP gateway, from a configurable request template."""

    name: ClassVar[str] = "sms_http"
    Config: ClassVar[type[msgspec.Struct]] = HttpGatewayConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"headers"})

    async def send(self, message: OutboundMessage) -> SendResult:
        cfg = self.config
        values = {"to": message.to, "text": message.text, "message_id": message.message_id}
        rendered = render_template(cfg.body_template, values)
        kwargs: dict[str, Any] = {"headers": cfg.headers}
        if cfg.method == "GET":
            kwargs["params"] = rendered
        elif cfg.body_format == "form":
            kwargs["data"] = rendered
        else:
            kwargs["content"] = msgspec.json.encode(rendered)
            kwargs["headers"] = {"Content-Type": "application/json", **cfg.headers}
        response = await self._request(cfg.method, cfg.url, **kwargs)
        if response.is_success:
            provider_id = None
            if cfg.id_path:
                provider_id = _dig(json_or_none(response), cfg.id_path)
            return SendResult(provider_message_id=provider_id, status="accepted")
        raise http_error(response, body_excerpt(response), provider_code=str(response.status_code))
