"""WhatsApp Business via the Cloud API (Graph) messages endpoint."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

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

__all__ = ["WhatsAppCloudSender", "WhatsAppConfig", "build_payload"]

_P, _T = PermanentSendError, TransientSendError
# Graph error codes (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
# Graph answers most of them with HTTP 400, so the code, not the status, decides.
_GRAPH_CODES: dict[int, tuple[type[ChannelError], ErrorCode]] = {
    0: (_P, ErrorCode.AUTH_FAILED),
    190: (_P, ErrorCode.AUTH_FAILED),  # access token expired / invalid
    10: (_P, ErrorCode.AUTH_FAILED),  # permission denied
    3: (_P, ErrorCode.CONFIG_ERROR),  # capability missing
    131031: (_P, ErrorCode.CONFIG_ERROR),  # business account locked
    133010: (_P, ErrorCode.CONFIG_ERROR),  # phone number not registered
    131026: (_P, ErrorCode.INVALID_RECIPIENT),  # undeliverable (not on WhatsApp, old app)
    131021: (_P, ErrorCode.INVALID_RECIPIENT),  # recipient is the sender
    131050: (_P, ErrorCode.RECIPIENT_OPTED_OUT),  # user stopped marketing messages
    100: (_P, ErrorCode.INVALID_REQUEST),  # invalid parameter
    131008: (_P, ErrorCode.INVALID_REQUEST),  # required parameter missing
    131009: (_P, ErrorCode.INVALID_REQUEST),  # parameter value invalid
    131047: (_P, ErrorCode.INVALID_REQUEST),  # free-form text outside the 24 h window
    131051: (_P, ErrorCode.INVALID_REQUEST),  # unsupported message type
    132000: (_P, ErrorCode.INVALID_REQUEST),  # template parameter count mismatch
    132001: (_P, ErrorCode.INVALID_REQUEST),  # template does not exist in that language
    132012: (_P, ErrorCode.INVALID_REQUEST),  # template parameter format mismatch
    132015: (_P, ErrorCode.INVALID_REQUEST),  # template paused
    132016: (_P, ErrorCode.INVALID_REQUEST),  # template disabled
    368: (_P, ErrorCode.REJECTED),  # account restricted for policy violations
    4: (_T, ErrorCode.RATE_LIMITED),  # app call rate
    80007: (_T, ErrorCode.RATE_LIMITED),  # WABA rate limit
    130429: (_T, ErrorCode.RATE_LIMITED),  # throughput limit
    131048: (_T, ErrorCode.RATE_LIMITED),  # spam rate limit
    131056: (_T, ErrorCode.RATE_LIMITED),  # too many messages to this recipient
    1: (_T, ErrorCode.PROVIDER_UNAVAILABLE),  # unknown API error
    2: (_T, ErrorCode.PROVIDER_UNAVAILABLE),  # service temporarily unavailable
    131000: (_T, ErrorCode.PROVIDER_UNAVAILABLE),  # something went wrong
    131016: (_T, ErrorCode.PROVIDER_UNAVAILABLE),  # service unavailable
    133004: (_T, ErrorCode.PROVIDER_UNAVAILABLE),  # server temporarily unavailable
}
_PHONE = re.compile(r"^\+?[1-9]\d{6,14}$")


class WhatsAppConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone_number_id: str
    access_token: str
    api_version: str = "v21.0"
    base_url: str = "https://graph.facebook.com"
    # Used when a message names a template but no language.
    default_language: str = "en"
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0


def build_payload(message: OutboundMessage, default_language: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to,
        # Echoed back in status webhooks: lets delivery receipts find our message.
        "biz_opaque_callback_data": message.message_id[:512],
    }
    if message.whatsapp_template:
        template: dict[str, Any] = {
            "name": message.whatsapp_template,
            "language": {"code": message.whatsapp_language or default_language},
        }
        if message.template_params:
            template["components"] = [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": p} for p in message.template_params],
                }
            ]
        payload.update(type="template", template=template)
    else:
        # Free-form text is only allowed inside the 24 h customer-service window; Graph
        # answers 131047 otherwise, which we classify as permanent.
        payload.update(type="text", text={"preview_url": False, "body": message.text})
    return payload


class WhatsAppCloudSender(HttpChannelSender[WhatsAppConfig]):
    """WhatsApp Business messages (templates, session text) through the Cloud API."""

    name: ClassVar[str] = "whatsapp_cloud"
    Config: ClassVar[type[msgspec.Struct]] = WhatsAppConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"access_token"})

    async def send(self, message: OutboundMessage) -> SendResult:
        if not _PHONE.match(message.to):
            raise PermanentSendError(
                ErrorCode.INVALID_RECIPIENT, f"not a phone number: {message.to!r}"
            )
        cfg = self.config
        url = f"{cfg.base_url.rstrip('/')}/{cfg.api_version}/{cfg.phone_number_id}/messages"
        response = await self._request(
            "POST",
            url,
            content=msgspec.json.encode(build_payload(message, cfg.default_language)),
            headers={
                "Authorization": f"Bearer {cfg.access_token}",
                "Content-Type": "application/json",
            },
        )
        answer = json_or_none(response)
        if response.is_success:
            return SendResult(provider_message_id=_message_id(answer), status="accepted")
        raise _graph_error(response, answer)


def _message_id(answer: Any) -> str | None:
    try:
        return str(answer["messages"][0]["id"])
    except (KeyError, IndexError, TypeError):
        return None


def _graph_error(response: httpx.Response, answer: Any) -> ChannelError:
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return http_error(response, body_excerpt(response))
    code = error.get("code")
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    reason = " - ".join(str(part) for part in (error.get("message"), details) if part)[:300]
    known = _GRAPH_CODES.get(code) if isinstance(code, int) else None
    return http_error(
        response,
        reason or body_excerpt(response),
        known=known,
        provider_code=str(code) if code is not None else None,
    )
