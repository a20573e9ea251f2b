"""Mobile push via the FCM HTTP v1 API."""

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

__all__ = ["FcmConfig", "FcmPushSender", "build_payload"]

_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
# firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
_FCM_CODES: dict[str, tuple[type[ChannelError], ErrorCode]] = {
    "UNREGISTERED": (PermanentSendError, ErrorCode.INVALID_RECIPIENT),  # app uninstalled
    "SENDER_ID_MISMATCH": (PermanentSendError, ErrorCode.INVALID_RECIPIENT),  # other project
    "INVALID_ARGUMENT": (PermanentSendError, ErrorCode.INVALID_REQUEST),
    "THIRD_PARTY_AUTH_ERROR": (PermanentSendError, ErrorCode.AUTH_FAILED),  # APNs/web push
    "QUOTA_EXCEEDED": (TransientSendError, ErrorCode.RATE_LIMITED),
    "UNAVAILABLE": (TransientSendError, ErrorCode.PROVIDER_UNAVAILABLE),
    "INTERNAL": (TransientSendError, ErrorCode.PROVIDER_UNAVAILABLE),
}
_ANALYTICS_LABEL = re.compile(r"^[a-zA-Z0-9\-_.~%]{1,50}$")


class FcmConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    # A short-lived OAuth2 token (service-account flow) minted and refreshed upstream.
    access_token: str
    base_url: str = "https://fcm.googleapis.com"
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0


def build_payload(message: OutboundMessage) -> dict[str, Any]:
    notification: dict[str, str] = {"body": message.text}
    if message.subject:
        notification["title"] = message.subject
    body: dict[str, Any] = {"token": message.to, "notification": notification}
    if message.data:
        body["data"] = dict(message.data)
    if _ANALYTICS_LABEL.match(message.category):
        # Lets FCM delivery reports be broken down by our message category.
        body["fcm_options"] = {"analytics_label": message.category}
    return {"message": body}


class FcmPushSender(HttpChannelSender[FcmConfig]):
    """Mobile push notifications through Firebase Cloud Messaging (HTTP v1)."""

    name: ClassVar[str] = "push_fcm"
    Config: ClassVar[type[msgspec.Struct]] = FcmConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"access_token"})

    async def send(self, message: OutboundMessage) -> SendResult:
        if not message.to or any(c.isspace() for c in message.to):
            raise PermanentSendError(ErrorCode.INVALID_RECIPIENT, "empty or malformed token")
        cfg = self.config
        url = f"{cfg.base_url.rstrip('/')}/v1/projects/{cfg.project_id}/messages:send"
        response = await self._request(
            "POST",
            url,
            content=msgspec.json.encode(build_payload(message)),
            headers={
                "Authorization": f"Bearer {cfg.access_token}",
                "Content-Type": "application/json",
            },
        )
        answer = json_or_none(response)
        if response.is_success:
            name = answer.get("name") if isinstance(answer, dict) else None
            return SendResult(provider_message_id=name, status="accepted")
        raise _fcm_error(response, answer)


def _fcm_error(response: httpx.Response, answer: Any) -> ChannelError:
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return http_error(response, body_excerpt(response))
    reason = str(error.get("message") or body_excerpt(response))[:300]
    fcm_code = next(
        (
            d.get("errorCode")
            for d in error.get("details") or []
            if isinstance(d, dict) and d.get("@type") == _FCM_ERROR_TYPE
        ),
        None,
    )
    # Without an FCM detail, the google.rpc status ("NOT_FOUND", "UNAVAILABLE") still helps.
    provider_code = fcm_code or error.get("status")
    known = _FCM_CODES.get(provider_code) if isinstance(provider_code, str) else None
    if known and provider_code == "INVALID_ARGUMENT" and "registration token" in reason.lower():
        # A malformed token: the token, not the payload, must go.
        known = (PermanentSendError, ErrorCode.INVALID_RECIPIENT)
    return http_error(response, reason, known=known, provider_code=provider_code)
