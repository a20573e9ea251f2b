from __future__ import annotations

import time

import pytest

from plugins.builtin.channels import (
    ErrorCode,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
    WebhookConfig,
    WebhookSender,
    verify_signature,
)
from plugins.builtin.channels.webhook import sign
from tests.fakes import Canned, FakeProviders, http_status

from .conftest import MakeMessage


def webhook(fake: FakeProviders, name: str = "crm", **overrides: object) -> WebhookSender:
    fields: dict[str, object] = {
        "url": fake.webhook_url(name),
        "secret": fake.webhook_secret,
        "headers": {"X-Api-Key": "receiver-key"},
    }
    fields.update(overrides)
    return WebhookSender(WebhookConfig(**fields))  # type: ignore[arg-type]


@pytest.fixture
def hook(make_message: MakeMessage) -> MakeMessage:
    def make(**overrides: object) -> OutboundMessage:
        fields: dict[str, object] = {
            "channel": "webhook",
            "to": "",
            "data": {"customer_id": "c42", "segment": "fragile"},
        }
        return make_message(**(fields | overrides))

    return make


async def test_signed_post(fake: FakeProviders, hook: MakeMessage) -> None:
    async with webhook(fake) as sender:
        result = await sender.send(hook())

    [request] = fake.requests_for("webhook")
    assert request.method == "POST"
    assert request.path == "/webhooks/crm"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-api-key"] == "receiver-key"
    assert request.headers["x-relais-message-id"] == "t1-welcome-c42-1"
    signature = request.headers["x-relais-signature"]
    assert verify_signature(fake.webhook_secret, signature, request.body)
    timestamp = int(signature.split(",")[0].removeprefix("t="))
    assert abs(time.time() - timestamp) < 5
    assert request.json() == {
        "message_id": "t1-welcome-c42-1",
        "tenant_id": "t1",
        "category": "marketing",
        "subject": "Bienvenue",
        "text": "Bonjour Alice",
        "html": None,
        "data": {"customer_id": "c42", "segment": "fragile"},
    }
    assert result.status == "sent"
    assert result.provider_message_id is None


async def test_wrong_secret_is_refused_by_receiver(fake: FakeProviders, hook: MakeMessage) -> None:
    async with webhook(fake, secret="not-the-secret") as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(hook())
    assert caught.value.code == ErrorCode.AUTH_FAILED
    assert caught.value.provider_code == "401"


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        (http_status(410), PermanentSendError, ErrorCode.ENDPOINT_GONE),
        (http_status(404), PermanentSendError, ErrorCode.INVALID_REQUEST),
        (http_status(422, {"error": "bad"}), PermanentSendError, ErrorCode.INVALID_REQUEST),
        (http_status(429, retry_after=12), TransientSendError, ErrorCode.RATE_LIMITED),
        (http_status(503), TransientSendError, ErrorCode.PROVIDER_UNAVAILABLE),
        (http_status(408), TransientSendError, ErrorCode.TIMEOUT),
    ],
)
async def test_status_classification(
    fake: FakeProviders, hook: MakeMessage, answer: Canned, kind: type, code: ErrorCode
) -> None:
    fake.program("crm", answer)
    async with webhook(fake) as sender:
        with pytest.raises(kind) as caught:
            await sender.send(hook())
    assert caught.value.code == code
    if code == ErrorCode.RATE_LIMITED:
        assert caught.value.retry_after == 12


async def test_any_2xx_is_success(fake: FakeProviders, hook: MakeMessage) -> None:
    fake.program("crm", http_status(202, {"queued": True}))
    async with webhook(fake) as sender:
        assert (await sender.send(hook())).status == "sent"


async def test_slow_receiver_times_out(fake: FakeProviders, hook: MakeMessage) -> None:
    fake.program("crm", http_status(200, delay=1.0))
    async with webhook(fake, timeout=0.2) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(hook())
    assert caught.value.code == ErrorCode.TIMEOUT


class TestVerifySignature:
    body = b'{"message_id":"m1"}'
    now = 1_700_000_000

    def test_valid(self) -> None:
        header = sign("s3cret", self.body, self.now)
        assert verify_signature("s3cret", header, self.body, now=self.now + 10)
        assert verify_signature(b"s3cret", header, self.body, now=self.now - 10)

    def test_tampered_or_wrong_secret(self) -> None:
        header = sign("s3cret", self.body, self.now)
        assert not verify_signature("s3cret", header, self.body + b" ", now=self.now)
        assert not verify_signature("other", header, self.body, now=self.now)

    def test_replay_outside_tolerance(self) -> None:
        header = sign("s3cret", self.body, self.now)
        assert not verify_signature("s3cret", header, self.body, 300, now=self.now + 301)
        assert verify_signature("s3cret", header, self.body, 600, now=self.now + 301)

    def test_rotation_accepts_any_v1(self) -> None:
        old = sign("old", self.body, self.now).split(",")[1]
        new = sign("new", self.body, self.now)
        header = f"{new},{old}"
        assert verify_signature("old", header, self.body, now=self.now)
        assert verify_signature("new", header, self.body, now=self.now)

    @pytest.mark.parametrize(
        "header", [None, "", "garbage", "t=abc,v1=00", f"t={now}", "v1=00", "t=1,v1="]
    )
    def test_malformed(self, header: str | None) -> None:
        assert not verify_signature("s3cret", header, self.body, now=self.now)
