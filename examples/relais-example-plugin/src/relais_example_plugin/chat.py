"""A channel: post the message text to a team-chat incoming webhook.

A sender implements `ChannelSender`: `open`/`close` hold a reusable connection, `send`
returns a `SendResult` or raises a *classified* error, so the dispatcher knows whether to
retry (`TransientSendError`) or give up (`PermanentSendError`).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import httpx
import msgspec

from plugins.builtin.channels import (
    ChannelSender,
    ErrorCode,
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)


class ChatWebhookConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://")]
    # Sent as a bearer token; a secret: encrypted at rest, never returned by the API.
    token: str
    username: str = "Relais"
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0


class ChatWebhookSender(ChannelSender[ChatWebhookConfig]):
    """Posts `{"text", "username"}` to an incoming-webhook URL."""

    name: ClassVar[str] = "chat_webhook"
    Config: ClassVar[type[msgspec.Struct]] = ChatWebhookConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})

    def __init__(self, config: ChatWebhookConfig) -> None:
        super().__init__(config)
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.config.timeout, follow_redirects=False)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def send(self, message: OutboundMessage) -> SendResult:
        if self._client is None:
            raise RuntimeError("use `async with ChatWebhookSender(config) as sender:`")
        cfg = self.config
        body = {"text": message.text, "username": cfg.username,
                "props": {"relais_message_id": message.message_id}}
        try:
            response = await self._client.post(
                cfg.url, json=body, headers={"Authorization": f"Bearer {cfg.token}"})
        except httpx.TimeoutException as exc:
            raise TransientSendError(ErrorCode.TIMEOUT, "chat webhook timed out") from exc
        except httpx.TransportError as exc:
            raise TransientSendError(ErrorCode.NETWORK_ERROR, type(exc).__name__) from exc
        if response.is_success:
            return SendResult(provider_message_id=None, status="sent")
        reason = f"chat webhook answered HTTP {response.status_code}"
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientSendError(ErrorCode.PROVIDER_UNAVAILABLE, reason)
        if response.status_code in (401, 403):
            raise PermanentSendError(ErrorCode.AUTH_FAILED, reason)
        raise PermanentSendError(ErrorCode.INVALID_REQUEST, reason)
