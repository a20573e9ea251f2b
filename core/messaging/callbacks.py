"""Provider delivery reports → `StatusUpdate`s. Pure parsing, no I/O.

- Twilio status callbacks (form-encoded `MessageSid`, `MessageStatus`, `ErrorCode`);
- WhatsApp Cloud API webhooks (`entry[].changes[].value.statuses[]`);
- email bounces as DSN (RFC 3464 `multipart/report; report-type=delivery-status`) and
  complaints as ARF (RFC 5965 `report-type=feedback-report`), posted raw by the relay or an
  inbound-mail hook; the original message is found by our `X-Relais-Message-Id` header or
  the deterministic `Message-ID`;
- a generic JSON format for HTTP SMS gateways and email providers' event webhooks:
  `{"events": [{"message_id" | "provider_message_id", "status", "hard"?, "reason"?, "at"?}]}`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message
from typing import Any

import msgspec

from core.errors import InvalidInput
from core.messaging.statuses import StatusUpdate

# Twilio: undeliverable numbers are hard bounces (30003 unreachable is often temporary).
_TWILIO_HARD = {"30005", "30006", "21211", "21614"}
# WhatsApp: not a WhatsApp user / number invalid.
_WHATSAPP_HARD = {131026, 131021}
_GENERIC = {"delivered", "bounced", "failed", "complained", "opened", "clicked"}
_OUR_ID = re.compile(r"^<?(m[0-9a-f]{32})@")


def twilio(form: dict[str, str]) -> list[StatusUpdate]:
    sid, status = form.get("MessageSid") or form.get("SmsSid"), form.get("MessageStatus")
    if not sid or not status:
        raise InvalidInput("MessageSid and MessageStatus are required", field="MessageStatus")
    code = form.get("ErrorCode") or None
    if status == "delivered":
        mapped, hard = "delivered", False
    elif status == "read":
        mapped, hard = "opened", False
    elif status in ("undelivered", "failed"):
        hard = code in _TWILIO_HARD
        mapped = "bounced" if hard else "failed"
    else:  # queued, accepted, sending, sent: nothing we did not know
        return []
    return [StatusUpdate(status=mapped, provider_message_id=sid, hard=hard, error_code=code,
                         reason=form.get("ErrorMessage") or (f"twilio {code}" if code else None))]


def whatsapp(payload: Any) -> list[StatusUpdate]:
    updates: list[StatusUpdate] = []
    if not isinstance(payload, dict):
        raise InvalidInput("expected a WhatsApp webhook object", field="body")
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            value = (change or {}).get("value") or {}
            for st in value.get("statuses") or []:
                update = _whatsapp_status(st)
                if update is not None:
                    updates.append(update)
    return updates


def _whatsapp_status(st: dict[str, Any]) -> StatusUpdate | None:
    status = st.get("status")
    errors = st.get("errors") or [{}]
    code = errors[0].get("code")
    mapped = {"delivered": "delivered", "read": "opened", "failed": "failed"}.get(status)
    if mapped is None:
        return None
    hard = mapped == "failed" and code in _WHATSAPP_HARD
    at = _epoch(st.get("timestamp"))
    ours = st.get("biz_opaque_callback_data")
    return StatusUpdate(status="bounced" if hard else mapped, provider_message_id=st.get("id"),
                        message_id=ours if isinstance(ours, str) and ours else None, at=at,
                        hard=hard, error_code=str(code) if code is not None else None,
                        reason=errors[0].get("title"))


def _epoch(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


class _GenericEvent(msgspec.Struct, forbid_unknown_fields=False):
    status: str
    message_id: str | None = None
    provider_message_id: str | None = None
    hard: bool = False
    reason: str | None = None
    error_code: str | None = None
    at: datetime | None = None


class _GenericBody(msgspec.Struct):
    events: list[_GenericEvent]


def generic(body: bytes) -> list[StatusUpdate]:
    try:
        raw = msgspec.json.decode(body)
        if isinstance(raw, dict) and "events" not in raw:
            raw = {"events": [raw]}
        parsed = msgspec.convert(raw, _GenericBody)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInput(f"expected {{\"events\": [...]}}: {exc}", field="events") from None
    updates = []
    for i, event in enumerate(parsed.events):
        if event.status not in _GENERIC:
            raise InvalidInput(f"status must be one of {sorted(_GENERIC)}",
                               field=f"events[{i}].status")
        if not (event.message_id or event.provider_message_id):
            raise InvalidInput("message_id or provider_message_id is required",
                               field=f"events[{i}]")
        updates.append(StatusUpdate(status=event.status, message_id=event.message_id,
                                    provider_message_id=event.provider_message_id,
                                    hard=event.hard or (event.status == "bounced" and
                                    (event.error_code or "").startswith("5")),
                                    reason=event.reason, error_code=event.error_code,
                                    at=event.at))
    return updates


# -- email reports ------------------------------------------------------------------------

def email_report(raw: bytes) -> list[StatusUpdate]:
    """A DSN (bounce) or ARF (complaint) report about one of our messages."""
    report = message_from_bytes(raw, policy=email_policy.default)
    if report.get_content_type() != "multipart/report":
        raise InvalidInput("expected a multipart/report (DSN or ARF)", field="body")
    kind = report.get_param("report-type", header="content-type")
    original = _original_id(report)
    if original is None:
        return []
    if kind == "feedback-report":
        return [StatusUpdate(status="complained", message_id=original,
                             reason=_feedback_type(report))]
    if kind != "delivery-status":
        raise InvalidInput(f"unsupported report type {kind!r}", field="body")
    updates = []
    for fields in _recipient_blocks(report):
        action = fields.get("action", "").lower()
        status = fields.get("status", "")
        diagnostic = fields.get("diagnostic-code")
        if action == "failed":
            hard = status.startswith("5")
            updates.append(StatusUpdate(status="bounced" if hard else "failed",
                                        message_id=original, hard=hard, error_code=status,
                                        reason=diagnostic or f"DSN {status}"))
        elif action == "delivered":
            updates.append(StatusUpdate(status="delivered", message_id=original))
    return updates


def _parts(message: Message) -> list[Message]:
    return list(message.walk())


def _original_id(report: Message) -> str | None:
    for part in _parts(report):
        headers: Message | None = None
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            headers = payload[0] if isinstance(payload, list) and payload else None
        elif part.get_content_type() == "text/rfc822-headers":
            headers = message_from_bytes(part.get_payload(decode=True) or b"",
                                         policy=email_policy.default)
        if headers is None:
            continue
        ours = headers.get("X-Relais-Message-Id")
        if ours:
            return str(ours).strip()
        match = _OUR_ID.match(str(headers.get("Message-ID") or "").strip())
        if match:
            return match.group(1)
    return None


def _recipient_blocks(report: Message) -> list[dict[str, str]]:
    for part in _parts(report):
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        # The first block is per-message fields; the rest are per recipient.
        return [{k.lower(): str(v).strip() for k, v in block.items()} for block in blocks[1:]]
    return []


def _feedback_type(report: Message) -> str:
    for part in _parts(report):
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            block = payload[0] if isinstance(payload, list) and payload else None
            if block is not None and block.get("Feedback-Type"):
                return f"feedback: {block.get('Feedback-Type')}"
    return "feedback: abuse"
