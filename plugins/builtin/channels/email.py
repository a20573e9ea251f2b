"""Email over SMTP (aiosmtplib), one reusable session per sender context."""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Annotated, ClassVar, Literal

import aiosmtplib
import msgspec

from .base import (
    ChannelError,
    ChannelSender,
    ErrorCode,
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)

__all__ = ["EmailConfig", "SmtpEmailSender", "build_mime", "mime_message_id"]

# 7bit forces quoted-printable/base64 bodies, so any relay accepts them without 8BITMIME.
# refold_source="none" keeps headers we set raw (List-Unsubscribe) exactly as written: the
# default folder would turn a long URL into RFC 2047 encoded-words that no client can use.
_POLICY = email_policy.SMTP.clone(cte_type="7bit", refold_source="none")
# Non-ASCII mailboxes need SMTPUTF8 end to end (RFC 6531); bodies may then travel as 8bit.
_UTF8_POLICY = email_policy.SMTPUTF8.clone(refold_source="none")
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_URI_UNSAFE = re.compile(r"[\s<>\",]")
# A bare mailbox only: display names, lists or angle brackets in `to` would be a bug upstream.
_MAILBOX = re.compile(r"^[^@\s<>\",;()\[\]\\]+@[^@\s<>\",;()\[\]\\]+\.[^@\s<>\",;()\[\]\\.]+$")
_DROPPED = 421  # "service not available, closing channel": the server is ending the session


class EmailConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str
    from_address: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    from_name: str | None = None
    reply_to: str | None = None
    username: str | None = None
    password: str | None = None
    tls: Literal["none", "starttls", "implicit"] = "starttls"
    validate_certs: bool = True
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    # EHLO name; by default aiosmtplib resolves the local FQDN, which can be slow in containers.
    local_hostname: str | None = None
    # Right-hand side of Message-ID; defaults to the from_address domain.
    message_id_domain: str | None = None


def mime_message_id(message_id: str, domain: str) -> str:
    """A stable RFC 5322 msg-id, so a retried send carries the same Message-ID."""
    local = (
        message_id
        if _DOT_ATOM.match(message_id)
        else hashlib.sha256(message_id.encode()).hexdigest()[:40]
    )
    return f"<{local}@{domain}>"


def _one_line(value: str) -> str:
    # Templated subjects may contain newlines; a header cannot.
    return " ".join(value.split())


def _needs_utf8(*addresses: str) -> bool:
    return not all(address.isascii() for address in addresses)


def build_mime(config: EmailConfig, message: OutboundMessage) -> EmailMessage:
    if not _MAILBOX.match(message.to):
        raise PermanentSendError(
            ErrorCode.INVALID_RECIPIENT, f"not an email address: {message.to!r}"
        )
    utf8 = _needs_utf8(config.from_address, message.to)
    mime = EmailMessage(policy=_UTF8_POLICY if utf8 else _POLICY)
    try:
        local, _, domain = config.from_address.rpartition("@")
        mime["From"] = Address(display_name=config.from_name or "", username=local, domain=domain)
        mime["To"] = message.to
        if config.reply_to:
            mime["Reply-To"] = config.reply_to
    except (ValueError, IndexError) as exc:
        raise PermanentSendError(ErrorCode.INVALID_RECIPIENT, f"bad address: {exc}") from exc
    mime["Subject"] = _one_line(message.subject or "")
    mime["Date"] = format_datetime(datetime.now(UTC))
    mime["Message-ID"] = mime_message_id(message.message_id, config.message_id_domain or domain)
    mime["X-Relais-Message-Id"] = _one_line(message.message_id)
    _add_unsubscribe(mime, message)
    mime.set_content(message.text, charset="utf-8")
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html", charset="utf-8")
        for part in mime.iter_parts():
            del part["MIME-Version"]  # add_alternative copies it into the part; noise only
    return mime


def _add_unsubscribe(mime: EmailMessage, message: OutboundMessage) -> None:
    targets: list[str] = []
    url = message.unsubscribe_url
    if url:
        if _URI_UNSAFE.search(url):
            raise PermanentSendError(ErrorCode.INVALID_REQUEST, "unsafe unsubscribe URL")
        targets.append(f"<{url}>")
    if message.unsubscribe_mailto:
        mailto = message.unsubscribe_mailto
        mailto = mailto if mailto.startswith("mailto:") else f"mailto:{mailto}"
        if _URI_UNSAFE.search(mailto):
            raise PermanentSendError(ErrorCode.INVALID_REQUEST, "unsafe unsubscribe mailto")
        targets.append(f"<{mailto}>")
    if not targets:
        return
    # One target per line: long URLs stay intact (see _POLICY) and lines stay readable.
    mime.set_raw("List-Unsubscribe", ",\r\n ".join(targets))
    # RFC 8058 one-click needs an HTTPS URI; advertising it for http:// would be ignored at
    # best and is refused by Gmail/Yahoo bulk-sender checks at worst.
    if url and url.lower().startswith("https://"):
        mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"


class _DroppedBeforeData(Exception):
    """The session died before DATA: nothing was delivered, so one resend is safe."""


def _classify(exc: aiosmtplib.SMTPResponseException, code: ErrorCode) -> ChannelError:
    reason = f"{exc.code} {exc.message}"[:300]
    provider_code = str(exc.code)
    if 400 <= exc.code < 500:
        return TransientSendError(ErrorCode.DEFERRED, reason, provider_code=provider_code)
    return PermanentSendError(code, reason, provider_code=provider_code)


class SmtpEmailSender(ChannelSender[EmailConfig]):
    """Email over SMTP (STARTTLS or implicit TLS), one reused session per context."""

    name: ClassVar[str] = "email"
    Config: ClassVar[type[msgspec.Struct]] = EmailConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})

    def __init__(self, config: EmailConfig) -> None:
        super().__init__(config)
        self._smtp: aiosmtplib.SMTP | None = None
        self._opened = False
        # One SMTP session carries one transaction at a time; parallelism = more senders.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        async with self._lock:
            await self._connected()
        self._opened = True  # only once a session exists: a failed open() can be retried

    async def close(self) -> None:
        self._opened = False
        async with self._lock:
            smtp, self._smtp = self._smtp, None
            if smtp is not None and smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()

    async def send(self, message: OutboundMessage) -> SendResult:
        if not self._opened:
            raise RuntimeError("SmtpEmailSender is not open; use `async with sender:`")
        mime = build_mime(self.config, message)
        utf8 = mime.policy is _UTF8_POLICY
        payload = mime.as_bytes(policy=mime.policy)
        async with self._lock:
            for attempt in (1, 2):
                smtp = await self._connected()
                try:
                    response = await self._transaction(smtp, message.to, payload, utf8)
                except _DroppedBeforeData as exc:
                    self._discard()
                    if attempt == 2:
                        raise TransientSendError(
                            ErrorCode.NETWORK_ERROR, f"connection lost twice: {exc}"
                        ) from exc
                    continue
                return SendResult(provider_message_id=_queue_id(response), status="sent")
        raise AssertionError("unreachable")

    def _discard(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        self._discard()
        cfg = self.config
        smtp = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=cfg.password,
            use_tls=cfg.tls == "implicit",
            # Explicit True/False: aiosmtplib's default (None) would silently send in clear
            # text when a server stops advertising STARTTLS.
            start_tls=cfg.tls == "starttls",
            validate_certs=cfg.validate_certs,
            timeout=cfg.timeout,
            local_hostname=cfg.local_hostname,
        )
        try:
            await smtp.connect()
            if smtp.is_ehlo_or_helo_needed:
                # Extensions (SIZE, SMTPUTF8) must be known before the first MAIL.
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()
        except aiosmtplib.SMTPAuthenticationError as exc:
            smtp.close()
            raise _classify(exc, ErrorCode.AUTH_FAILED) from exc
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            raise _classify(exc, ErrorCode.CONFIG_ERROR) from exc
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
            smtp.close()
            raise TransientSendError(ErrorCode.TIMEOUT, f"connect: {exc}") from exc
        except ssl.SSLError as exc:
            smtp.close()
            raise TransientSendError(ErrorCode.TLS_ERROR, f"connect: {exc}"[:300]) from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            smtp.close()
            if isinstance(exc.__cause__, ssl.SSLError):
                raise TransientSendError(ErrorCode.TLS_ERROR, str(exc)[:300]) from exc
            raise TransientSendError(ErrorCode.NETWORK_ERROR, f"connect: {exc}"[:300]) from exc
        except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS required but not offered
            smtp.close()
            raise PermanentSendError(ErrorCode.CONFIG_ERROR, str(exc)[:300]) from exc
        self._smtp = smtp
        return smtp

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, to: str, payload: bytes, utf8: bool
    ) -> aiosmtplib.SMTPResponse:
        # MAIL/RCPT/DATA by hand rather than sendmail(): we must know whether a dropped
        # connection happened before DATA (safe to resend) or during it (maybe delivered).
        sender = self.config.from_address
        options = [f"SIZE={len(payload)}"] if smtp.supports_extension("size") else []
        if utf8:
            if not smtp.supports_extension("smtputf8"):
                raise PermanentSendError(
                    ErrorCode.INVALID_RECIPIENT, "non-ASCII address but server lacks SMTPUTF8"
                )
            options.append("SMTPUTF8")
        encoding = "utf-8" if utf8 else "ascii"
        try:
            await smtp.mail(sender, options=options, encoding=encoding)
            await smtp.rcpt(to, encoding=encoding)
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise _DroppedBeforeData(str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == _DROPPED:
                raise _DroppedBeforeData(exc.message) from exc
            await self._reset(smtp)
            kind = (
                ErrorCode.SENDER_REFUSED
                if isinstance(exc, aiosmtplib.SMTPSenderRefused)
                else ErrorCode.INVALID_RECIPIENT
            )
            raise _classify(exc, kind) from exc
        except (ValueError, UnicodeEncodeError) as exc:
            await self._reset(smtp)
            raise PermanentSendError(ErrorCode.INVALID_RECIPIENT, str(exc)[:300]) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            self._discard()
            raise TransientSendError(ErrorCode.TIMEOUT, str(exc)) from exc
        try:
            return await smtp.data(payload)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(smtp)
            raise _classify(exc, ErrorCode.REJECTED) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            self._discard()
            raise TransientSendError(ErrorCode.TIMEOUT, f"during DATA: {exc}") from exc
        except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            # Possibly delivered: leave the retry decision to the dispatcher; the stable
            # Message-ID lets receivers drop the duplicate if it was.
            self._discard()
            raise TransientSendError(ErrorCode.NETWORK_ERROR, f"during DATA: {exc}") from exc

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._discard()  # unknown session state: start clean on the next send


def _queue_id(response: aiosmtplib.SMTPResponse) -> str | None:
    # "250 2.0.0 Ok: queued as 4BqTt12345" (Postfix) / "250 OK id=1r2s3t" (Exim): the relay's
    # queue id is what its logs and bounces reference.
    match = re.search(r"queued as\s+(\S+)|id=(\S+)", response.message)
    return (match.group(1) or match.group(2)) if match else None
