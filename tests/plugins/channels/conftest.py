from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from plugins.builtin.channels import OutboundMessage
from tests.fakes import FakeProviders, SmtpSink

MakeMessage = Callable[..., OutboundMessage]


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as providers:
        yield providers


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture
def make_message() -> MakeMessage:
    def make(**overrides: Any) -> OutboundMessage:
        fields: dict[str, Any] = {
            "message_id": "t1-welcome-c42-1",
            "tenant_id": "t1",
            "channel": "email",
            "to": "alice@example.com",
            "subject": "Bienvenue",
            "text": "Bonjour Alice",
            "category": "marketing",
        }
        fields.update(overrides)
        return OutboundMessage(**fields)

    return make


@pytest.fixture
def closed_port() -> int:
    """A local port with nothing listening (bound then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
