"""Inbound webhook source: a tool (form builder, ticketing, support desk) posts JSON to the
tenant's URL `/hooks/{tenant}/{connector_id}`; the HMAC signature over the raw body is the
only credential.

Two signature schemes:
- `relais` (default): header `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, the scheme our
  own outbound webhooks use; the timestamp bounds replays to `tolerance_seconds`;
- `sha256`: header `sha256=<hex HMAC-SHA256 of body>` (GitHub style) or the bare hex digest,
  for tools that cannot sign a timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping as MappingABC
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from core.connectors.mapping import Mapping
from plugins.builtin.channels.webhook import verify_signature
from plugins.connectors import PushConnector, SourceRecord


class WebhookSourceConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mapping: Mapping
    signing_secret: Annotated[str, msgspec.Meta(min_length=16)]
    scheme: Literal["relais", "sha256"] = "relais"
    signature_header: str = "X-Relais-Signature"
    # Dotted path to the list of records in the body; none: the body is one record or a list.
    items_path: str | None = None
    tolerance_seconds: Annotated[int, msgspec.Meta(ge=30, le=86_400)] = 300


class WebhookSourceSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_body_kb: Annotated[int, msgspec.Meta(ge=1, le=10_240)] = 1024
    max_items_per_delivery: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000


def _at(value: Any, path: str | None) -> Any:
    for part in (path.split(".") if path else ()):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class WebhookSource(PushConnector):
    name: ClassVar[str] = "webhook_source"
    description: ClassVar[str] = "Inbound webhooks signed with HMAC-SHA256, one URL per connector"
    Config: ClassVar[type[msgspec.Struct]] = WebhookSourceConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"signing_secret"})
    PluginConfig: ClassVar[type[msgspec.Struct]] = WebhookSourceSettings

    def verify(self, config: Any, body: bytes, headers: MappingABC[str, str],
               now: float) -> bool:
        header = headers.get(config.signature_header.lower())
        if not header:
            return False
        if config.scheme == "relais":
            return verify_signature(config.signing_secret, header, body,
                                    config.tolerance_seconds, now=now)
        expected = hmac.new(config.signing_secret.encode(), body, hashlib.sha256).hexdigest()
        given = header.strip().removeprefix("sha256=")
        return hmac.compare_digest(expected, given)

    def parse(self, config: Any, body: bytes,
              headers: MappingABC[str, str]) -> list[SourceRecord]:
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            return [SourceRecord(1, None, f"invalid JSON: {exc}")]
        items = _at(payload, config.items_path)
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            where = config.items_path or "the body"
            return [SourceRecord(1, None, f"{where} is not an object or a list of objects")]
        return [SourceRecord(i, item) if isinstance(item, dict)
                else SourceRecord(i, None, "an item must be a JSON object")
                for i, item in enumerate(items, start=1)]
