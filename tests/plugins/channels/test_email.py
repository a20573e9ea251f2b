from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from plugins.builtin.channels import (
    EmailConfig,
    ErrorCode,
    PermanentSendError,
    SmtpEmailSender,
    TransientSendError,
)
from plugins.builtin.channels.email import mime_message_id
from tests.fakes import SmtpSink

from .conftest import MakeMessage

LONG_URL = "https://relais.example/u/" + "x" * 150 + "?t=abc&c=42"


def config_for(sink: SmtpSink, **overrides: object) -> EmailConfig:
    fields: dict[str, object] = {
        "host": sink.host,
        "port": sink.port,
        "tls": "none",
        "from_address": "news@reseau.example.com",
        "from_name": "Réseau Bus",
        "reply_to": "support@reseau.example.com",
        "timeout": 5.0,
        "local_hostname": "relais.test",
    }
    fields.update(overrides)
    return EmailConfig(**fields)  # type: ignore[arg-type]


async def test_multipart_message_with_headers(sink: SmtpSink, make_message: MakeMessage) -> None:
    message = make_message(
        subject="Été: votre abonnement\nexpire",
        text="Bonjour Alice, مرحبا",
        html="<p>Bonjour <b>Alice</b>, مرحبا</p>",
        unsubscribe_url=LONG_URL,
        unsubscribe_mailto="unsub+c42@reseau.example.com",
    )
    async with SmtpEmailSender(config_for(sink)) as sender:
        result = await sender.send(message)

    assert result.status == "sent"
    assert result.provider_message_id == "Q000001"
    [mail] = sink.messages
    assert mail.mail_from == "news@reseau.example.com"
    assert mail.rcpt_tos == ["alice@example.com"]
    assert mail.data.isascii(), "7bit-clean: no 8BITMIME needed"
    mime = mail.message
    assert mime.get_content_type() == "multipart/alternative"
    plain, html = mime.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content_charset() == "utf-8"
    assert plain.get_content().strip() == "Bonjour Alice, مرحبا"
    assert html.get_content_type() == "text/html"
    assert html.get_content().strip() == "<p>Bonjour <b>Alice</b>, مرحبا</p>"
    assert mime["Subject"] == "Été: votre abonnement expire"
    assert mime["From"].addresses[0].display_name == "Réseau Bus"
    assert mime["From"].addresses[0].addr_spec == "news@reseau.example.com"
    assert mime["To"] == "alice@example.com"
    assert mime["Reply-To"] == "support@reseau.example.com"
    assert mime["Message-ID"] == "<t1-welcome-c42-1@reseau.example.com>"
    assert mime["X-Relais-Message-Id"] == "t1-welcome-c42-1"
    assert parsedate_to_datetime(mime["Date"]).tzinfo is not None
    # The long URL survives verbatim: no RFC 2047 encoding of List-Unsubscribe.
    assert b"<" + LONG_URL.encode() + b">" in mail.data
    assert str(mime["List-Unsubscribe"]) == (f"<{LONG_URL}>, <mailto:unsub+c42@reseau.example.com>")
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_text_only_without_unsubscribe(sink: SmtpSink, make_message: MakeMessage) -> None:
    async with SmtpEmailSender(config_for(sink, from_name=None, reply_to=None)) as sender:
        await sender.send(make_message(category="transactional"))
    mime = sink.messages[0].message
    assert mime.get_content_type() == "text/plain"
    assert mime.get_content().strip() == "Bonjour Alice"
    assert mime["From"] == "news@reseau.example.com"
    assert "List-Unsubscribe" not in mime
    assert "List-Unsubscribe-Post" not in mime
    assert "Reply-To" not in mime


@pytest.mark.parametrize(
    ("url", "mailto", "header", "one_click"),
    [
        (None, "mailto:u@x.example.com", "<mailto:u@x.example.com>", False),
        ("http://x.example.com/u", None, "<http://x.example.com/u>", False),
        ("https://x.example.com/u", None, "<https://x.example.com/u>", True),
    ],
)
async def test_one_click_only_with_https(
    sink: SmtpSink,
    make_message: MakeMessage,
    url: str | None,
    mailto: str | None,
    header: str,
    one_click: bool,
) -> None:
    async with SmtpEmailSender(config_for(sink)) as sender:
        await sender.send(make_message(unsubscribe_url=url, unsubscribe_mailto=mailto))
    mime = sink.messages[0].message
    assert mime["List-Unsubscribe"] == header
    assert ("List-Unsubscribe-Post" in mime) is one_click


def test_message_id_is_deterministic_and_valid() -> None:
    assert mime_message_id("abc.def-1", "d.example") == "<abc.def-1@d.example>"
    unsafe = mime_message_id("t1:step 3:c42", "d.example")
    assert unsafe == mime_message_id("t1:step 3:c42", "d.example")
    assert unsafe != mime_message_id("t1:step 3:c43", "d.example")
    assert ":" not in unsafe and " " not in unsafe


async def test_connection_is_reused(sink: SmtpSink, make_message: MakeMessage) -> None:
    async with SmtpEmailSender(config_for(sink)) as sender:
        for n in range(3):
            await sender.send(make_message(message_id=f"m{n}", to=f"u{n}@example.com"))
    assert [m.rcpt_tos[0] for m in sink.messages] == [f"u{n}@example.com" for n in range(3)]
    assert sink.connections == 1


async def test_reconnects_after_idle_drop(sink: SmtpSink, make_message: MakeMessage) -> None:
    async with SmtpEmailSender(config_for(sink)) as sender:
        await sender.send(make_message(message_id="m1"))
        sink.drop_connections()
        await sender.send(make_message(message_id="m2"))
    assert len(sink.messages) == 2
    assert sink.connections == 2


async def test_resends_once_when_dropped_before_data(
    sink: SmtpSink, make_message: MakeMessage
) -> None:
    async with SmtpEmailSender(config_for(sink)) as sender:
        sink.close_on_next_mail()
        await sender.send(make_message())
    assert len(sink.messages) == 1
    assert sink.connections == 2


async def test_gives_up_when_dropped_twice(sink: SmtpSink, make_message: MakeMessage) -> None:
    async with SmtpEmailSender(config_for(sink)) as sender:
        sink.close_on_next_mail(times=2)
        with pytest.raises(TransientSendError) as caught:
            await sender.send(make_message())
        assert caught.value.code == ErrorCode.NETWORK_ERROR
        await sender.send(make_message())  # and the next send reconnects
    assert len(sink.messages) == 1


async def test_drop_during_data_is_not_resent(sink: SmtpSink, make_message: MakeMessage) -> None:
    async with SmtpEmailSender(config_for(sink)) as sender:
        sink.close_on_next_data()
        with pytest.raises(TransientSendError):
            await sender.send(make_message())
        assert sink.connections == 1, "no silent resend: the outcome was unknown"
        await sender.send(make_message(message_id="m2"))
    assert len(sink.messages) == 1


async def test_recipient_refused_550_is_permanent(
    sink: SmtpSink, make_message: MakeMessage
) -> None:
    sink.refuse("ghost@example.com", 550)
    async with SmtpEmailSender(config_for(sink)) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(make_message(to="ghost@example.com"))
        # The session was reset and stays usable.
        await sender.send(make_message(to="bob@example.com"))
    assert caught.value.code == ErrorCode.INVALID_RECIPIENT
    assert caught.value.provider_code == "550"
    assert "User unknown" in caught.value.reason
    assert [m.rcpt_tos for m in sink.messages] == [["bob@example.com"]]
    assert sink.connections == 1


async def test_recipient_deferred_451_is_transient(
    sink: SmtpSink, make_message: MakeMessage
) -> None:
    sink.refuse("grey@example.com", 451)
    async with SmtpEmailSender(config_for(sink)) as sender:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(make_message(to="grey@example.com"))
    assert caught.value.code == ErrorCode.DEFERRED
    assert caught.value.provider_code == "451"
    assert caught.value.retry_after is None


async def test_data_rejected_is_permanent(sink: SmtpSink, make_message: MakeMessage) -> None:
    sink.reject_data(554, "5.7.1 Spam detected")
    async with SmtpEmailSender(config_for(sink)) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(make_message())
    assert caught.value.code == ErrorCode.REJECTED
    assert caught.value.provider_code == "554"


@pytest.mark.parametrize("to", ["not-an-email", "a@b", "Alice <alice@example.com>", ""])
async def test_malformed_address_never_reaches_server(
    sink: SmtpSink, make_message: MakeMessage, to: str
) -> None:
    async with SmtpEmailSender(config_for(sink)) as sender:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(make_message(to=to))
    assert caught.value.code == ErrorCode.INVALID_RECIPIENT
    assert sink.messages == []


async def test_internationalized_address_uses_smtputf8(
    sink: SmtpSink, make_message: MakeMessage
) -> None:
    async with SmtpEmailSender(config_for(sink)) as sender:
        await sender.send(make_message(to="josé@exämple.com"))
    assert sink.messages[0].rcpt_tos == ["josé@exämple.com"]
    assert sink.messages[0].message["To"] == "josé@exämple.com"


async def test_login_over_starttls(make_message: MakeMessage) -> None:
    with SmtpSink(tls="starttls", username="relais", password="s3cret") as sink:
        good = config_for(
            sink, tls="starttls", validate_certs=False, username="relais", password="s3cret"
        )
        async with SmtpEmailSender(good) as sender:
            await sender.send(make_message())
        assert len(sink.messages) == 1

        bad = config_for(
            sink, tls="starttls", validate_certs=False, username="relais", password="nope"
        )
        with pytest.raises(PermanentSendError) as caught:
            async with SmtpEmailSender(bad):
                pass
        assert caught.value.code == ErrorCode.AUTH_FAILED
        assert caught.value.provider_code == "535"


async def test_unreachable_server_is_transient(closed_port: int) -> None:
    config = EmailConfig(host="127.0.0.1", port=closed_port, tls="none", from_address="a@b.co")
    with pytest.raises(TransientSendError) as caught:
        async with SmtpEmailSender(config):
            pass
    assert caught.value.code == ErrorCode.NETWORK_ERROR


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_tls_modes(mode: str, make_message: MakeMessage) -> None:
    with SmtpSink(tls=mode) as sink:  # type: ignore[arg-type]
        config = config_for(sink, tls=mode, validate_certs=False)
        async with SmtpEmailSender(config) as sender:
            await sender.send(make_message())
        assert len(sink.messages) == 1

        with pytest.raises(TransientSendError) as caught:  # self-signed: verification fails
            async with SmtpEmailSender(config_for(sink, tls=mode, validate_certs=True)):
                pass
        assert caught.value.code == ErrorCode.TLS_ERROR


async def test_required_starttls_missing_is_a_config_error(sink: SmtpSink) -> None:
    # Never fall back to clear text when the tenant asked for STARTTLS.
    with pytest.raises(PermanentSendError) as caught:
        async with SmtpEmailSender(config_for(sink, tls="starttls")):
            pass
    assert caught.value.code == ErrorCode.CONFIG_ERROR


async def test_send_requires_open_sender(sink: SmtpSink, make_message: MakeMessage) -> None:
    with pytest.raises(RuntimeError):
        await SmtpEmailSender(config_for(sink)).send(make_message())
