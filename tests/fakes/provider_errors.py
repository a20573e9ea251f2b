"""Canned provider answers, shaped like each real API's error documents."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FCM_ERRORS", "Canned", "fcm_error", "graph_error", "http_status", "twilio_error"]


@dataclass
class Canned:
    status: int
    body: Any = None  # dict/list → JSON, bytes → raw, None → empty
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None  # how many requests it answers when programmed; None: all
    delay: float = 0.0  # seconds to stall before answering (client timeout tests)

    def answer(self) -> Canned:
        if self.delay:
            time.sleep(self.delay)  # runs in the server's per-connection thread
        return self


def _headers(retry_after: float | str | None) -> dict[str, str]:
    if retry_after is None:
        return {}
    if isinstance(retry_after, float) and retry_after.is_integer():
        retry_after = int(retry_after)
    return {"Retry-After": str(retry_after)}


def http_status(
    status: int,
    body: Any = None,
    *,
    retry_after: float | str | None = None,
    headers: dict[str, str] | None = None,
    times: int | None = None,
    delay: float = 0.0,
) -> Canned:
    return Canned(status, body, {**_headers(retry_after), **(headers or {})}, times, delay)


def twilio_error(
    code: int,
    status: int = 400,
    message: str | None = None,
    *,
    retry_after: float | str | None = None,
    times: int | None = None,
) -> Canned:
    body = {
        "code": code,
        "message": message or f"Twilio error {code}",
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Canned(status, body, _headers(retry_after), times)


def graph_error(
    code: int,
    status: int = 400,
    message: str | None = None,
    *,
    details: str | None = None,
    retry_after: float | str | None = None,
    times: int | None = None,
) -> Canned:
    error = {
        "message": message or f"(#{code}) Graph error",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or ""},
        "fbtrace_id": "AFakeTraceId",
    }
    return Canned(status, {"error": error}, _headers(retry_after), times)


# FCM v1 ErrorCode → (HTTP status, google.rpc status), per the FCM reference.
FCM_ERRORS: dict[str, tuple[int, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND"),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED"),
    "UNAVAILABLE": (503, "UNAVAILABLE"),
    "INTERNAL": (500, "INTERNAL"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED"),
}


def fcm_error(
    error_code: str,
    *,
    message: str | None = None,
    retry_after: float | str | None = None,
    times: int | None = None,
) -> Canned:
    """An FCM error; "UNAUTHENTICATED" gives Google's bare OAuth failure (no FCM detail)."""
    if error_code == "UNAUTHENTICATED":
        error: dict[str, Any] = {
            "code": 401,
            "message": message or "Request had invalid authentication credentials.",
            "status": "UNAUTHENTICATED",
        }
        return Canned(401, {"error": error}, _headers(retry_after), times)
    status, rpc_status = FCM_ERRORS[error_code]
    error = {
        "code": status,
        "message": message or f"FCM error {error_code}",
        "status": rpc_status,
        "details": [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        ],
    }
    return Canned(status, {"error": error}, _headers(retry_after), times)
