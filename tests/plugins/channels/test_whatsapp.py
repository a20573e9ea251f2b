from __future__ import annotations

import pytest

from plugins.builtin.channels import (
    ErrorCode,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
    WhatsAppCloudSender,
    WhatsAppConfig,
)
from tests.fakes import Canned, FakeProviders, graph_error, http_status

from .conftest import MakeMessage

TO = "+212612345678"


def whatsapp(fake: FakeProviders, **overrides: object) -> WhatsAppCloudSender:
    fields: dict[str, object] = {
        "phone_number_id": fake.whatsapp_phone_number_id,
        "access_token": fake.whatsapp_token,
        "base_url": fake.url,
        "api_version": "v21.0",
        "default_language": "fr",
    }
    fields.update(overrides)
    return WhatsAppCloudSender(WhatsAppConfig(**fields))  # type: ignore[arg-type]


@pytest.fixture
def wa(make_message: MakeMessage) -> MakeMessage:
    def make(**overrides: object) -> OutboundMessage:
        fields: dict[str, object] = {
            "channel": "whatsapp",
            "to": TO,
            "text": "Votre carte expire le 12/07",
            "whatsapp_template": "card_expiry",
            "whatsapp_language": "ar",
            "template_params": ["Amina", "12/07"],
        }
        return make_message(**(fields | overrides))

    return make


async def test_template_message(fake: FakeProviders, wa: MakeMessage) -> None:
    async with whatsapp(fake) as sender:
        result = await sender.send(wa())

    [request] = fake.requests_for("whatsapp")
    assert request.method == "POST"
    assert request.path == f"/v21.0/{fake.whatsapp_phone_number_id}/messages"
    assert request.headers["authorization"] == f"Bearer {fake.whatsapp_token}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "biz_opaque_callback_data": "t1-welcome-c42-1",
        "type": "template",
        "template": {
            "name": "card_expiry",
            "language": {"code": "ar"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Amina"},
                        {"type": "text", "text": "12/07"},
                    ],
                }
            ],
        },
    }
    assert result.status == "accepted"
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith("wamid.")


async def test_template_without_params_uses_default_language(
    fake: FakeProviders, wa: MakeMessage
) -> None:
    async with whatsapp(fake) as sender:
        await sender.send(wa(whatsapp_language=None, template_params=[]))
    template = fake.requests_for("whatsapp")[0].json()["template"]
    assert template == {"name": "card_expiry", "language": {"code": "fr"}}


async def test_free_text_message(fake: FakeProviders, wa: MakeMessage) -> None:
    async with whatsapp(fake) as sender:
        await sender.send(wa(whatsapp_template=None, template_params=[]))
    body = fake.requests_for("whatsapp")[0].json()
    assert body["type"] == "text"
    assert body["text"] == {"preview_url": False, "body": "Votre carte expire le 12/07"}
    assert "template" not in body


@pytest.mark.parametrize(
    ("answer", "code", "provider_code"),
    [
        (
            graph_error(131026, message="Message undeliverable"),
            ErrorCode.INVALID_RECIPIENT,
            "131026",
        ),
        (graph_error(100, message="Invalid parameter"), ErrorCode.INVALID_REQUEST, "100"),
        (graph_error(132001, 404), ErrorCode.INVALID_REQUEST, "132001"),
        (graph_error(131047), ErrorCode.INVALID_REQUEST, "131047"),
        (graph_error(131050), ErrorCode.RECIPIENT_OPTED_OUT, "131050"),
        (graph_error(190, 401), ErrorCode.AUTH_FAILED, "190"),
        (graph_error(999999, 400), ErrorCode.INVALID_REQUEST, "999999"),
    ],
)
async def test_permanent_errors(
    fake: FakeProviders, wa: MakeMessage, answer: Canned, code: ErrorCode, provider_code: str
) -> None:
    fake.program(TO, answer)
    async with whatsapp(fake) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(wa())
    assert caught.value.code == code
    assert caught.value.provider_code == provider_code


@pytest.mark.parametrize(
    ("answer", "code", "retry_after"),
    [
        # Graph reports throughput limits as HTTP 400: the code must win over the status.
        (graph_error(130429, 400, retry_after=60), ErrorCode.RATE_LIMITED, 60),
        (graph_error(131056, 400), ErrorCode.RATE_LIMITED, None),
        (graph_error(131000, 500), ErrorCode.PROVIDER_UNAVAILABLE, None),
        (graph_error(2, 503, retry_after=5), ErrorCode.PROVIDER_UNAVAILABLE, 5),
        (http_status(502, b"<html>Bad gateway</html>"), ErrorCode.PROVIDER_UNAVAILABLE, None),
    ],
)
async def test_transient_errors(
    fake: FakeProviders,
    wa: MakeMessage,
    answer: Canned,
    code: ErrorCode,
    retry_after: float | None,
) -> None:
    fake.program(TO, answer)
    async with whatsapp(fake) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(wa())
    assert caught.value.code == code
    assert caught.value.retry_after == retry_after


async def test_details_are_in_the_reason(fake: FakeProviders, wa: MakeMessage) -> None:
    fake.program(TO, graph_error(131026, message="Undeliverable", details="Not on WhatsApp"))
    async with whatsapp(fake) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(wa())
    assert caught.value.reason == "Undeliverable - Not on WhatsApp"


async def test_wrong_token(fake: FakeProviders, wa: MakeMessage) -> None:
    async with whatsapp(fake, access_token="expired") as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(wa())
    assert caught.value.code == ErrorCode.AUTH_FAILED
    assert caught.value.provider_code == "190"


async def test_wrong_phone_number_id(fake: FakeProviders, wa: MakeMessage) -> None:
    async with whatsapp(fake, phone_number_id="999") as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(wa())
    assert caught.value.code == ErrorCode.INVALID_REQUEST


async def test_malformed_number_is_refused_locally(fake: FakeProviders, wa: MakeMessage) -> None:
    async with whatsapp(fake) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(wa(to="alice@example.com"))
    assert caught.value.code == ErrorCode.INVALID_RECIPIENT
    assert fake.requests == []
