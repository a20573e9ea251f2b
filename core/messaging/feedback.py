"""What the public tracking endpoints do: opens, clicks, one-click unsubscribes and provider
status callbacks. Every entry point first verifies the signed token, then acts inside the
tenant the token names (and only there)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from core.consents.schemas import ConsentChange, ConsentChanges
from core.consents.service import set_consents
from core.db import Database
from core.errors import InvalidInput, NotFound, RelaisError
from core.messaging import callbacks
from core.messaging.statuses import Applied, StatusUpdate, apply_updates, status_changes
from core.messaging.tracking import Signer
from core.plugin_config.secrets import SecretBox
from core.plugin_config.service import enabled_configs
from core.settings import Settings
from plugins.manager import PluginManager
from tenants.context import Actor, TenantContext
from tenants.service import tenant_context

log = logging.getLogger("relais.tracking")
TRACKING = Actor(kind="system", id="tracking")


@dataclass
class Feedback:
    db: Database
    settings: Settings
    plugins: PluginManager | None = None

    @property
    def signer(self) -> Signer:
        return Signer(self.settings.secret_key, self.settings.base_url)

    async def _context(self, tenant_id: str) -> TenantContext:
        try:
            return await tenant_context(self.db, tenant_id, TRACKING)
        except NotFound:
            raise NotFound("unknown link") from None

    async def _apply(self, ctx: TenantContext, updates: Sequence[StatusUpdate]) -> list[Applied]:
        async with self.db.tenant_tx(ctx) as conn:
            applied = await apply_updates(conn, ctx, self.db.keys, updates)
            enabled = {}
            if self.plugins is not None and applied:
                enabled = await enabled_configs(conn, ctx, self.plugins,
                                                SecretBox.from_settings(self.settings))
        changes = status_changes(applied)
        if self.plugins is not None and changes:
            await self.plugins.message_status_changed(ctx.tenant_id, changes,
                                                      enabled=list(enabled))
        return applied

    async def opened(self, token: str) -> None:
        t = self.signer.verify(token, "o")
        await self._apply(await self._context(t.tenant_id),
                          [StatusUpdate(status="opened", message_id=t.subject)])

    async def clicked(self, token: str) -> str:
        """Records the click and returns where to send the browser: the URL that was in the
        message, nothing else."""
        t = self.signer.verify(token, "c")
        if not t.url:
            raise NotFound("unknown link")
        await self._apply(await self._context(t.tenant_id),
                          [StatusUpdate(status="clicked", message_id=t.subject,
                                        details={"url": t.url})])
        return t.url

    def check_unsubscribe(self, token: str) -> None:
        self.signer.verify(token, "u")

    async def unsubscribed(self, token: str) -> bool:
        """Records the unsubscribe and withdraws the consent (channel and purpose) the
        message was sent under. Idempotent; False when the message is unknown."""
        t = self.signer.verify(token, "u")
        ctx = await self._context(t.tenant_id)
        applied = await self._apply(ctx, [StatusUpdate(status="unsubscribed",
                                                       message_id=t.subject)])
        if not applied:
            return False
        message = applied[0]
        if message.purpose == "transactional":
            return True  # no consent to withdraw: the link is never issued for those
        change = ConsentChange(channel=message.channel, purpose=message.purpose,  # type: ignore[arg-type]
                               status="withdrawn", legal_basis="consent",
                               source="unsubscribe_link", proof=f"message:{message.message_id}")
        try:
            await set_consents(self.db, ctx, message.customer_id, ConsentChanges(items=[change]))
        except (NotFound, InvalidInput):  # erased or unknown profile: nothing to withdraw
            log.info("unsubscribe without a live profile", extra={"tenant": ctx.tenant_id})
        return True

    async def provider_status(self, token: str, content_type: str, body: bytes,
                              form: dict[str, str] | None) -> int:
        """A provider's delivery report for the sender plugin the URL was issued for.
        Returns how many messages it changed."""
        t = self.signer.verify(token, "s")
        ctx = await self._context(t.tenant_id)
        updates = parse_report(t.subject, content_type, body, form)
        return len(await self._apply(ctx, updates))


def parse_report(sender: str, content_type: str, body: bytes,
                 form: dict[str, str] | None) -> list[StatusUpdate]:
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if sender == "sms_twilio":
            return callbacks.twilio(form or {})
        if sender == "whatsapp_cloud":
            try:
                payload = msgspec.json.decode(body)
            except msgspec.DecodeError:
                raise InvalidInput("expected JSON", field="body") from None
            return callbacks.whatsapp(payload)
        if media in ("multipart/report", "message/rfc822"):
            return callbacks.email_report(body if media == "message/rfc822" else
                                          f"Content-Type: {content_type}\r\n\r\n".encode()
                                          + body)
        return callbacks.generic(body)
    except RelaisError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"unreadable report: {exc}", field="body") from None
