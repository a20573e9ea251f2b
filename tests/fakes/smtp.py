"""A recording SMTP server (aiosmtpd, in its own thread) for tests and benchmarks."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import ipaddress
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

__all__ = ["ReceivedMail", "SmtpSink", "self_signed_cert"]


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the DATA payload exactly as received (CRLF line endings)

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@functools.cache
def self_signed_cert() -> tuple[str, str]:
    """(cert path, key path) for 127.0.0.1/localhost, generated once per process."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="relais-fake-tls-"))
    atexit.register(shutil.rmtree, folder, True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@dataclass
class _Script:
    """What the sink was told to do; read and written under the sink's lock."""

    refusals: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    close_on_mail: int = 0
    close_on_data: int = 0


class _Controller(Controller):
    """Binds port 0 and learns the real port before aiosmtpd's readiness probe."""

    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(sink, hostname="127.0.0.1", port=0, **kwargs)
        self._sink = sink

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()

    def factory(self) -> SMTP:
        smtpd = super().factory()
        with self._sink._lock:  # one SMTP instance per accepted connection
            self._sink._sessions.append(smtpd)
            self._sink.connections += 1
        return smtpd


class SmtpSink:
    """Usage: `with SmtpSink() as sink:` then send to `sink.host`/`sink.port`.

    Program failures with `refuse(rcpt, 550)`, `reject_data(554)`, `close_on_next_mail()`,
    `close_on_next_data()`, `drop_connections()`. Received mail is in `sink.messages`.
    """

    def __init__(
        self,
        *,
        tls: Literal["none", "starttls", "implicit"] = "none",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.tls = tls
        self.messages: list[ReceivedMail] = []
        self.connections = 0
        self._credentials = (username, password)
        self._script = _Script()
        self._lock = threading.Lock()
        self._sessions: list[SMTP] = []
        self._controller: _Controller | None = None
        self._queue_seq = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        kwargs: dict[str, Any] = {"server_hostname": "sink.relais.test", "ready_timeout": 10}
        if self.tls != "none":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self_signed_cert())
            if self.tls == "implicit":
                kwargs["ssl_context"] = context
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        if self._credentials[0] is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.tls == "starttls",
            )
        self._controller = _Controller(self, **kwargs)
        self._controller.start()
        self.port = self._controller.port
        with self._lock:  # the readiness probe is not a client
            self.connections = 0
            self._sessions.clear()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- programming -----------------------------------------------------------------------
    def refuse(self, recipient: str, code: int = 550, message: str | None = None) -> None:
        """Answer RCPT TO:<recipient> with `code` (550 permanent, 451 temporary...)."""
        default = "5.1.1 User unknown" if code >= 500 else "4.7.1 Try again later"
        with self._lock:
            self._script.refusals[recipient.lower()] = f"{code} {message or default}"

    def reject_data(self, code: int = 554, message: str = "5.7.1 Message rejected") -> None:
        """Answer every following DATA with `code` until `reset()`."""
        with self._lock:
            self._script.data_reply = f"{code} {message}"

    def close_on_next_mail(self, times: int = 1) -> None:
        """Drop the connection when MAIL FROM arrives (an idle-timeout race)."""
        with self._lock:
            self._script.close_on_mail += times

    def close_on_next_data(self, times: int = 1) -> None:
        """Drop the connection at the end of DATA without answering (outcome unknown)."""
        with self._lock:
            self._script.close_on_data += times

    def drop_connections(self) -> None:
        """Close every open session from the server side, like an idle timeout."""
        assert self._controller is not None
        done = threading.Event()

        def close_all() -> None:
            for smtpd in self._sessions:
                if smtpd.transport is not None:
                    smtpd.transport.close()
            done.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)

    def reset(self) -> None:
        with self._lock:
            self._script = _Script()
            self.messages.clear()

    # -- aiosmtpd handler hooks (run in the sink thread) -----------------------------------
    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        username, password = self._credentials
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == username
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self._lock:
            drop = self._script.close_on_mail > 0
            self._script.close_on_mail -= int(drop)
        if drop:
            server.transport.close()
            return "421 4.4.2 Connection dropped"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self._lock:
            refusal = self._script.refusals.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        with self._lock:
            reply = self._script.data_reply
            drop = self._script.close_on_data > 0
            self._script.close_on_data -= int(drop)
            if drop:
                server.transport.close()
                return "421 4.4.2 Connection dropped"
            if reply:
                return reply
            self._queue_seq += 1
            queue_id = f"Q{self._queue_seq:06d}"
            data = envelope.original_content or envelope.content
            self.messages.append(
                ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(data))
            )
        return f"250 2.0.0 Ok: queued as {queue_id}"
