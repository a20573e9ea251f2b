from __future__ import annotations

import base64

import msgspec
import pytest

from plugins.builtin.channels import (
    ErrorCode,
    HttpGatewayConfig,
    HttpGatewaySmsSender,
    PermanentSendError,
    TransientSendError,
    TwilioConfig,
    TwilioSmsSender,
)
from plugins.builtin.channels.sms import render_template
from tests.fakes import FakeProviders, http_status, twilio_error

from .conftest import MakeMessage

TO = "+33612345678"


def twilio(fake: FakeProviders, **overrides: object) -> TwilioSmsSender:
    fields: dict[str, object] = {
        "account_sid": fake.twilio_sid,
        "auth_token": fake.twilio_token,
        "from_number": "+33700000001",
        "base_url": fake.url,
        "timeout": 5.0,
    }
    fields.update(overrides)
    return TwilioSmsSender(TwilioConfig(**fields))  # type: ignore[arg-type]


@pytest.fixture
def sms(make_message: MakeMessage) -> MakeMessage:
    def make(**overrides: object) -> object:
        return make_message(
            **{"channel": "sms", "to": TO, "text": "Votre bus {ligne} arrive"} | overrides
        )

    return make  # type: ignore[return-value]


async def test_twilio_request_format(fake: FakeProviders, sms: MakeMessage) -> None:
    sender = twilio(fake, status_callback="https://relais.example/cb/sms")
    async with sender:
        result = await sender.send(sms())

    [request] = fake.requests_for("twilio")
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{fake.twilio_sid}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    credentials = base64.b64encode(f"{fake.twilio_sid}:{fake.twilio_token}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {credentials}"
    assert request.form() == {
        "To": TO,
        "From": "+33700000001",
        "Body": "Votre bus {ligne} arrive",
        "StatusCallback": "https://relais.example/cb/sms",
    }
    assert result.status == "accepted"
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith("SM")


async def test_twilio_messaging_service(fake: FakeProviders, sms: MakeMessage) -> None:
    async with twilio(fake, from_number=None, messaging_service_sid="MG123") as sender:
        await sender.send(sms())
    form = fake.requests_for("twilio")[0].form()
    assert form["MessagingServiceSid"] == "MG123"
    assert "From" not in form


def test_twilio_config_needs_a_sender() -> None:
    with pytest.raises(msgspec.ValidationError):
        TwilioSmsSender.parse_config({"account_sid": "AC1", "auth_token": "x"})


async def test_twilio_wrong_credentials(fake: FakeProviders, sms: MakeMessage) -> None:
    async with twilio(fake, auth_token="wrong") as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(sms())
    assert caught.value.code == ErrorCode.AUTH_FAILED
    assert caught.value.provider_code == "20003"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (21211, ErrorCode.INVALID_RECIPIENT),
        (21614, ErrorCode.INVALID_RECIPIENT),
        (21610, ErrorCode.RECIPIENT_OPTED_OUT),
        (21606, ErrorCode.SENDER_REFUSED),
        (21620, ErrorCode.INVALID_REQUEST),  # unknown code: falls back on HTTP 400
    ],
)
async def test_twilio_permanent_codes(
    fake: FakeProviders, sms: MakeMessage, code: int, expected: ErrorCode
) -> None:
    fake.program(TO, twilio_error(code, message="nope"))
    async with twilio(fake) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(sms())
    assert caught.value.code == expected
    assert caught.value.provider_code == str(code)
    assert caught.value.reason == "nope"


async def test_twilio_rate_limit_is_transient_with_retry_after(
    fake: FakeProviders, sms: MakeMessage
) -> None:
    fake.program(TO, twilio_error(20429, 429, retry_after=7))
    async with twilio(fake) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(sms())
    assert caught.value.code == ErrorCode.RATE_LIMITED
    assert caught.value.retry_after == 7


async def test_twilio_400_rate_limit_code_is_transient(
    fake: FakeProviders, sms: MakeMessage
) -> None:
    fake.program(TO, twilio_error(14107, 400))
    async with twilio(fake) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(sms())
    assert caught.value.code == ErrorCode.RATE_LIMITED


async def test_twilio_html_503_then_success(fake: FakeProviders, sms: MakeMessage) -> None:
    fake.program(TO, http_status(503, b"<html>busy</html>", retry_after=2, times=1))
    async with twilio(fake) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(sms())
        assert caught.value.code == ErrorCode.PROVIDER_UNAVAILABLE
        assert caught.value.retry_after == 2
        assert (await sender.send(sms())).provider_message_id


@pytest.mark.parametrize("to", ["0612345678", "+0612345678", "+33 6 12", ""])
async def test_twilio_rejects_non_e164_locally(
    fake: FakeProviders, sms: MakeMessage, to: str
) -> None:
    async with twilio(fake) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(sms(to=to))
    assert caught.value.code == ErrorCode.INVALID_RECIPIENT
    assert fake.requests == []


async def test_twilio_timeout_is_transient(fake: FakeProviders, sms: MakeMessage) -> None:
    fake.program(TO, http_status(201, {"sid": "SMlate"}, delay=1.0))
    async with twilio(fake, timeout=0.2) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(sms())
    assert caught.value.code == ErrorCode.TIMEOUT


async def test_unreachable_provider_is_transient(closed_port: int, sms: MakeMessage) -> None:
    config = TwilioConfig(
        account_sid="AC1",
        auth_token="t",
        from_number="+1",
        base_url=f"http://127.0.0.1:{closed_port}",
    )
    async with TwilioSmsSender(config) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(sms())
    assert caught.value.code == ErrorCode.NETWORK_ERROR


async def test_connection_reuse(fake: FakeProviders, sms: MakeMessage) -> None:
    async with twilio(fake) as sender:
        for _ in range(3):
            await sender.send(sms())
    assert len(fake.requests_for("twilio")) == 3
    assert fake.connections == 1


def gateway(fake: FakeProviders, **overrides: object) -> HttpGatewaySmsSender:
    fields: dict[str, object] = {
        "url": fake.gateway_url,
        "headers": {"Authorization": f"Bearer {fake.gateway_token}"},
        "body_template": {
            "to": "{to}",
            "text": "{text}",
            "meta": {"ref": "relais-{message_id}", "tags": ["{to}"]},
        },
        "id_path": "data.id",
    }
    fields.update(overrides)
    return HttpGatewaySmsSender(HttpGatewayConfig(**fields))  # type: ignore[arg-type]


async def test_gateway_json(fake: FakeProviders, sms: MakeMessage) -> None:
    async with gateway(fake) as sender:
        result = await sender.send(sms(text='Code {to} "42"'))
    [request] = fake.requests_for("gateway")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "to": TO,
        "text": 'Code {to} "42"',  # placeholders inside the text stay verbatim
        "meta": {"ref": "relais-t1-welcome-c42-1", "tags": [TO]},
    }
    assert result.provider_message_id == "gw-1"
    assert result.status == "accepted"


async def test_gateway_form_and_get(fake: FakeProviders, sms: MakeMessage) -> None:
    template = {"to": "{to}", "text": "{text}", "sender": "RELAIS"}
    async with gateway(fake, body_format="form", body_template=template) as sender:
        await sender.send(sms())
    async with gateway(fake, method="GET", body_template=template, id_path=None) as sender:
        result = await sender.send(sms())
    form_request, get_request = fake.requests_for("gateway")
    assert form_request.form() == {"to": TO, "text": "Votre bus {ligne} arrive", "sender": "RELAIS"}
    assert get_request.method == "GET"
    assert get_request.query == {"to": TO, "text": "Votre bus {ligne} arrive", "sender": "RELAIS"}
    assert result.provider_message_id is None


def test_gateway_form_template_must_be_flat() -> None:
    with pytest.raises(msgspec.ValidationError):
        HttpGatewaySmsSender.parse_config(
            {"url": "http://x", "body_format": "form", "body_template": {"a": {"b": "c"}}}
        )


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        (http_status(400, {"error": "bad number"}), PermanentSendError, ErrorCode.INVALID_REQUEST),
        (http_status(500), TransientSendError, ErrorCode.PROVIDER_UNAVAILABLE),
        (http_status(429, retry_after=3), TransientSendError, ErrorCode.RATE_LIMITED),
        (
            http_status(302, headers={"Location": "http://evil"}),
            PermanentSendError,
            ErrorCode.UNEXPECTED_RESPONSE,
        ),
    ],
)
async def test_gateway_errors(
    fake: FakeProviders, sms: MakeMessage, answer: object, kind: type, code: ErrorCode
) -> None:
    fake.program(TO, answer)  # type: ignore[arg-type]
    async with gateway(fake) as sender:
        with pytest.raises(kind) as caught:
            await sender.send(sms())
    assert caught.value.code == code


async def test_gateway_wrong_key(fake: FakeProviders, sms: MakeMessage) -> None:
    async with gateway(fake, headers={"Authorization": "Bearer nope"}) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(sms())
    assert caught.value.code == ErrorCode.AUTH_FAILED


def test_render_template() -> None:
    values = {"to": "+1", "text": "{message_id}", "message_id": "m"}
    assert render_template({"a": ["{to}:{text}", 3, None]}, values) == {
        "a": ["+1:{message_id}", 3, None]
    }
