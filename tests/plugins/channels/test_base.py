from __future__ import annotations

import time
from email.utils import formatdate

import msgspec
import pytest

from plugins.builtin.channels import (
    BUILTIN_SENDERS,
    ChannelError,
    ErrorCode,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
    TwilioConfig,
    TwilioSmsSender,
    WebhookSender,
)
from plugins.builtin.channels._http import error_for_http_status, parse_retry_after

from .conftest import MakeMessage


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = time.time()
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now=now) == pytest.approx(90, abs=1)
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (429, TransientSendError, ErrorCode.RATE_LIMITED),
        (408, TransientSendError, ErrorCode.TIMEOUT),
        (500, TransientSendError, ErrorCode.PROVIDER_UNAVAILABLE),
        (503, TransientSendError, ErrorCode.PROVIDER_UNAVAILABLE),
        (401, PermanentSendError, ErrorCode.AUTH_FAILED),
        (403, PermanentSendError, ErrorCode.AUTH_FAILED),
        (400, PermanentSendError, ErrorCode.INVALID_REQUEST),
        (404, PermanentSendError, ErrorCode.INVALID_REQUEST),
        (301, PermanentSendError, ErrorCode.UNEXPECTED_RESPONSE),
    ],
)
def test_http_status_classification(status: int, kind: type, code: ErrorCode) -> None:
    error = error_for_http_status(status, "why", retry_after=4.0)
    assert type(error) is kind
    assert isinstance(error, ChannelError)
    assert error.code == code
    assert error.reason == "why"
    if isinstance(error, TransientSendError):
        assert error.retry_after == 4.0


def test_config_parsing_and_redaction() -> None:
    raw = {"account_sid": "AC1", "auth_token": "tok", "from_number": "+33700000001"}
    config = TwilioSmsSender.parse_config(raw)
    assert config == TwilioSmsSender.parse_config(msgspec.json.encode(raw))
    redacted = TwilioSmsSender.redact_config(config)
    assert redacted["auth_token"] == "***"
    assert redacted["account_sid"] == "AC1"
    assert "tok" not in repr(TwilioSmsSender(config))  # type: ignore[arg-type]
    with pytest.raises(msgspec.ValidationError):
        TwilioSmsSender.parse_config({**raw, "auth_tokn": "typo"})
    with pytest.raises(msgspec.ValidationError):
        TwilioSmsSender.parse_config({**raw, "timeout": 0})
    assert isinstance(TwilioSmsSender.from_config(raw), TwilioSmsSender)


def test_sender_checks_its_config_type() -> None:
    with pytest.raises(TypeError):
        WebhookSender(TwilioConfig(account_sid="a", auth_token="b", from_number="+1"))  # type: ignore[arg-type]


def test_builtin_registry_is_consistent() -> None:
    assert set(BUILTIN_SENDERS) == {
        "email",
        "sms_twilio",
        "sms_http",
        "whatsapp_cloud",
        "push_fcm",
        "webhook",
    }
    for name, sender in BUILTIN_SENDERS.items():
        assert sender.name == name
        assert sender.secret_fields, f"{name} declares no secret"
        assert sender.secret_fields <= set(sender.Config.__struct_fields__), name


async def test_http_sender_must_be_opened(make_message: MakeMessage) -> None:
    sender = TwilioSmsSender(TwilioConfig(account_sid="a", auth_token="b", from_number="+1"))
    with pytest.raises(RuntimeError, match="async with"):
        await sender.send(make_message(to="+33612345678"))


def test_outbound_message_is_frozen_and_serializable(make_message: MakeMessage) -> None:
    message = make_message(data={"k": "v"}, template_params=["a"])
    with pytest.raises(AttributeError):
        message.to = "x"  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(message), type=OutboundMessage) == message
