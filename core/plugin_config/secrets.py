"""Encryption at rest of plugin and connector secrets (API tokens, passwords, signing keys).

AES-256-GCM with a key derived (HKDF-SHA256) from `settings.secret_key`, so one operator
secret protects every tenant's credentials and rotating it is a single decision. The
associated data binds a ciphertext to its row (tenant, plugin or connector): a blob copied
into another row does not decrypt. Plain values live only in memory, never in logs.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import ConfigurationError
from core.settings import Settings

_VERSION = b"\x01"
_NONCE_BYTES = 12


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ConfigurationError(
                "RELAIS_SECRET_KEY is not set: plugin secrets cannot be encrypted")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"relais/plugin-secrets",
                   info=b"aes-256-gcm v1").derive(secret_key.encode())
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(settings.secret_key)

    def __repr__(self) -> str:
        return "<SecretBox>"

    def seal(self, values: dict[str, Any], binding: str) -> bytes | None:
        """Encrypt `values` for the row named by `binding`; None when there is nothing."""
        if not values:
            return None
        nonce = os.urandom(_NONCE_BYTES)
        plain = msgspec.json.encode(values)
        return _VERSION + nonce + self._aead.encrypt(nonce, plain, binding.encode())

    def open(self, blob: bytes | None, binding: str) -> dict[str, Any]:
        if not blob:
            return {}
        blob = bytes(blob)
        if blob[:1] != _VERSION:
            raise ConfigurationError("stored secrets use an unknown format")
        nonce, sealed = blob[1:1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES:]
        try:
            plain = self._aead.decrypt(nonce, sealed, binding.encode())
        except InvalidTag:
            raise ConfigurationError(
                "stored secrets cannot be decrypted (was RELAIS_SECRET_KEY changed?)"
            ) from None
        return msgspec.json.decode(plain)


def plugin_binding(tenant_id: str | None, plugin: str) -> str:
    return f"plugin\x00{tenant_id or ''}\x00{plugin}"


def connector_binding(tenant_id: str, connector_id: str) -> str:
    return f"connector\x00{tenant_id}\x00{connector_id}"
