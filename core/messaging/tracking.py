"""Signed tracking URLs: open pixel, click redirect, one-click unsubscribe, provider status
callbacks.

A token is `<payload>.<mac>`: the payload (kind, tenant, message id, extra) in base64url
JSON, the MAC a truncated HMAC-SHA256 under a key derived from `settings.secret_key`. The
public endpoints trust nothing but a valid MAC, so the click redirect only ever goes to a
URL that was in the message we sent (no open redirect), and nobody can unsubscribe or
mark opens for a message id they guessed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
from typing import Literal

import msgspec

from core.errors import ConfigurationError, NotFound

Kind = Literal["o", "c", "u", "s"]
_MAC_BYTES = 16
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class Token(msgspec.Struct, array_like=True, frozen=True):
    kind: str
    tenant_id: str
    subject: str
    """The message id; for status callbacks, the sender plugin name."""
    url: str | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret_key: str, base_url: str) -> None:
        if not secret_key:
            raise ConfigurationError("RELAIS_SECRET_KEY is not set: tracking links cannot "
                                     "be signed")
        self._key = hmac.new(secret_key.encode(), b"relais tracking v1", hashlib.sha256).digest()
        self.base_url = base_url.rstrip("/")

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:_MAC_BYTES])

    def token(self, kind: Kind, tenant_id: str, subject: str, url: str | None = None) -> str:
        payload = _b64(msgspec.json.encode(Token(kind, tenant_id, subject, url)))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, kind: Kind) -> Token:
        """The token's content, or NotFound: a forged, truncated or other-kind token is
        indistinguishable from an unknown page."""
        payload, _, mac = token.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            raise NotFound("unknown link")
        try:
            decoded = msgspec.json.decode(_unb64(payload), type=Token)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise NotFound("unknown link") from None
        if decoded.kind != kind:
            raise NotFound("unknown link")
        return decoded

    # -- URLs ----------------------------------------------------------------------------

    def open_url(self, tenant_id: str, message_id: str) -> str:
        return f"{self.base_url}/t/o/{self.token('o', tenant_id, message_id)}"

    def click_url(self, tenant_id: str, message_id: str, url: str) -> str:
        return f"{self.base_url}/t/c/{self.token('c', tenant_id, message_id, url)}"

    def unsubscribe_url(self, tenant_id: str, message_id: str) -> str:
        return f"{self.base_url}/t/u/{self.token('u', tenant_id, message_id)}"

    def status_url(self, tenant_id: str, sender: str) -> str:
        return f"{self.base_url}/t/s/{self.token('s', tenant_id, sender)}"


def is_web_url(url: str) -> bool:
    lowered = url.strip().lower()
    return lowered.startswith(("https://", "http://"))


def track_html(html_body: str, signer: Signer, tenant_id: str, message_id: str,
               *, untracked: set[str]) -> str:
    """Route every http(s) link through the click redirect and add the open pixel.
    Links in `untracked` (the unsubscribe link) stay as they are."""

    def rewrite(match: re.Match[str]) -> str:
        prefix, quote, raw = match.groups()
        url = html.unescape(raw).strip()
        if not is_web_url(url) or url in untracked:
            return match.group(0)
        tracked = signer.click_url(tenant_id, message_id, url)
        return f"{prefix}{quote}{html.escape(tracked, quote=True)}{quote}"

    body = _HREF.sub(rewrite, html_body)
    pixel = (f'<img src="{html.escape(signer.open_url(tenant_id, message_id), quote=True)}" '
             'width="1" height="1" alt="" style="display:none">')
    ends = list(_BODY_END.finditer(body))
    if ends:
        at = ends[-1].start()
        return body[:at] + pixel + body[at:]
    return body + pixel
