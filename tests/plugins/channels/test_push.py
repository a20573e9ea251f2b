from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from plugins.builtin.channels import (
    ErrorCode,
    FcmConfig,
    FcmPushSender,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
)
from tests.fakes import FakeProviders, fcm_error

from .conftest import MakeMessage

TOKEN = "fcm-device-token-abc123"


def fcm(fake: FakeProviders, **overrides: object) -> FcmPushSender:
    fields: dict[str, object] = {
        "project_id": fake.fcm_project,
        "access_token": fake.fcm_token,
        "base_url": fake.url,
    }
    fields.update(overrides)
    return FcmPushSender(FcmConfig(**fields))  # type: ignore[arg-type]


@pytest.fixture
def push(make_message: MakeMessage) -> MakeMessage:
    def make(**overrides: object) -> OutboundMessage:
        fields: dict[str, object] = {
            "channel": "push",
            "to": TOKEN,
            "subject": "Ligne 3 perturbée",
            "text": "Trafic interrompu entre A et B",
            "category": "traffic_info",
            "data": {"line": "3", "deeplink": "relais://lines/3"},
        }
        return make_message(**(fields | overrides))

    return make


async def test_send_format(fake: FakeProviders, push: MakeMessage) -> None:
    async with fcm(fake) as sender:
        result = await sender.send(push())

    [request] = fake.requests_for("fcm")
    assert request.method == "POST"
    assert request.path == f"/v1/projects/{fake.fcm_project}/messages:send"
    assert request.headers["authorization"] == f"Bearer {fake.fcm_token}"
    assert request.json() == {
        "message": {
            "token": TOKEN,
            "notification": {
                "title": "Ligne 3 perturbée",
                "body": "Trafic interrompu entre A et B",
            },
            "data": {"line": "3", "deeplink": "relais://lines/3"},
            "fcm_options": {"analytics_label": "traffic_info"},
        }
    }
    assert result.status == "accepted"
    assert result.provider_message_id == f"projects/{fake.fcm_project}/messages/1"


async def test_minimal_payload(fake: FakeProviders, push: MakeMessage) -> None:
    async with fcm(fake) as sender:
        await sender.send(push(subject=None, data={}, category="not a label!"))
    assert fake.requests_for("fcm")[0].json() == {
        "message": {"token": TOKEN, "notification": {"body": "Trafic interrompu entre A et B"}}
    }


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("UNREGISTERED", ErrorCode.INVALID_RECIPIENT),
        ("SENDER_ID_MISMATCH", ErrorCode.INVALID_RECIPIENT),
        ("INVALID_ARGUMENT", ErrorCode.INVALID_REQUEST),
        ("THIRD_PARTY_AUTH_ERROR", ErrorCode.AUTH_FAILED),
    ],
)
async def test_permanent_errors(
    fake: FakeProviders, push: MakeMessage, error: str, code: ErrorCode
) -> None:
    fake.program(TOKEN, fcm_error(error))
    async with fcm(fake) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(push())
    assert caught.value.code == code
    assert caught.value.provider_code == error


async def test_invalid_token_format_is_a_bad_recipient(
    fake: FakeProviders, push: MakeMessage
) -> None:
    message = "The registration token is not a valid FCM registration token"
    fake.program(TOKEN, fcm_error("INVALID_ARGUMENT", message=message))
    async with fcm(fake) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(push())
    assert caught.value.code == ErrorCode.INVALID_RECIPIENT
    assert caught.value.reason == message


@pytest.mark.parametrize(
    ("error", "retry_after", "code"),
    [
        ("QUOTA_EXCEEDED", 30, ErrorCode.RATE_LIMITED),
        ("UNAVAILABLE", 10, ErrorCode.PROVIDER_UNAVAILABLE),
        ("INTERNAL", None, ErrorCode.PROVIDER_UNAVAILABLE),
    ],
)
async def test_transient_errors(
    fake: FakeProviders,
    push: MakeMessage,
    error: str,
    retry_after: float | None,
    code: ErrorCode,
) -> None:
    fake.program(TOKEN, fcm_error(error, retry_after=retry_after))
    async with fcm(fake) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(push())
    assert caught.value.code == code
    assert caught.value.provider_code == error
    assert caught.value.retry_after == retry_after


async def test_retry_after_as_http_date(fake: FakeProviders, push: MakeMessage) -> None:
    fake.program(
        TOKEN, fcm_error("UNAVAILABLE", retry_after=formatdate(time.time() + 120, usegmt=True))
    )
    async with fcm(fake) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(push())
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120


async def test_error_then_success(fake: FakeProviders, push: MakeMessage) -> None:
    fake.program(TOKEN, fcm_error("UNAVAILABLE", times=1))
    async with fcm(fake) as sender:
        with pytest.raises(TransientSendError):
            await sender.send(push())
        assert (await sender.send(push())).provider_message_id


async def test_expired_access_token(fake: FakeProviders, push: MakeMessage) -> None:
    async with fcm(fake, access_token="expired") as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(push())
    assert caught.value.code == ErrorCode.AUTH_FAILED
    assert caught.value.provider_code == "UNAUTHENTICATED"


async def test_empty_token_is_refused_locally(fake: FakeProviders, push: MakeMessage) -> None:
    async with fcm(fake) as sender:
        with pytest.raises(PermanentSendError):
            await sender.send(push(to=""))
    assert fake.requests == []


async def test_provider_wide_outage(fake: FakeProviders, push: MakeMessage) -> None:
    fake.program_route("fcm", fcm_error("UNAVAILABLE", times=2))
    fake.program("token-b", fcm_error("UNREGISTERED"))  # per-token programs take precedence
    async with fcm(fake) as sender:
        with pytest.raises(PermanentSendError):
            await sender.send(push(to="token-b"))
        for token in ("token-c", "token-d"):
            with pytest.raises(TransientSendError):
                await sender.send(push(to=token))
        assert (await sender.send(push(to="token-e"))).provider_message_id
