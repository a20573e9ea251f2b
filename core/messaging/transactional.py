"""The transactional API: one transactional or alert message to one customer, idempotent.

The request is checked the way the dispatcher will treat it (same `Preparer`): an unknown
customer, template, locale or address, or a template that does not render for this customer,
is a 422 now rather than a failed message later; a missing consent or a suppressed address
is recorded as a `skipped` message, so the caller sees why nothing will be sent.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import msgspec
from arq import ArqRedis

from core.audit.service import record
from core.db import Database
from core.errors import Conflict, InvalidInput
from core.identity.normalise import normalise_identifier
from core.messaging.channels import enabled_plugins, sender_for
from core.messaging.ids import message_id
from core.messaging.prepare import Preparer
from core.messaging.schemas import Message, PlannedMessage, TransactionalSend
from core.messaging.service import fetch_message, insert_planned, kick_dispatch
from core.messaging.statuses import ADDRESS_KIND
from core.messaging.tracking import Signer
from core.plugin_config.secrets import SecretBox
from core.settings import Settings
from core.templates.context import load_customers
from core.templates.effective import load_effective
from plugins.manager import PluginManager
from tenants.context import TenantContext

SOURCE_ID = "api"
_ALLOWED = ("transactional", "alert", "service")


def request_hash(data: TransactionalSend) -> str:
    canonical = json.dumps(msgspec.to_builtins(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def transactional_id(tenant_id: str, idempotency_key: str) -> str:
    # The idempotency key alone names the request: the same key for another customer is
    # the same request with a different body, refused below.
    return message_id(tenant_id, "transactional", SOURCE_ID, "", "", idempotency_key)


async def send(db: Database, arq: ArqRedis, settings: Settings, plugins: PluginManager,
               ctx: TenantContext, data: TransactionalSend) -> tuple[Message, bool]:
    """(the message, whether this call created it)."""
    digest = request_hash(data)
    msg_id = transactional_id(ctx.tenant_id, data.idempotency_key)
    async with db.tenant_tx(ctx) as conn:
        existing = await fetch_message(conn, msg_id)
        if existing is not None:
            stored = await conn.fetchval("select request_hash from messages where id = $1",
                                         msg_id)
            if stored != digest:
                raise Conflict("this idempotency_key was used with a different request",
                               field="idempotency_key")
            return existing, False
        template = (await load_effective(conn, ctx.tenant_id, [data.template_id])).get(
            data.template_id)
        if template is None:
            raise InvalidInput(f"no template {data.template_id!r} for this tenant",
                               field="template_id")
        if template.category not in _ALLOWED:
            raise InvalidInput(f"a {template.category} template is sent by campaigns, not the "
                               "transactional API", field="template_id")
        enabled = await enabled_plugins(conn, ctx, plugins, SecretBox.from_settings(settings))
        if sender_for(template.channel, enabled, plugins) is None:
            raise InvalidInput(f"the tenant has no {template.channel} channel plugin enabled",
                               field="template_id")
        if data.locale is not None and data.locale not in template.locales:
            raise InvalidInput(f"no {data.locale!r} content; available: "
                               f"{sorted(template.locales)}", field="locale")
        customer = (await load_customers(conn, [data.customer_id])).get(data.customer_id)
        if customer is None:
            raise InvalidInput("no such customer in this tenant", field="customer_id")
        to = _address(template.channel, data.to, ctx.country)
        now = datetime.now(UTC)
        row = {"id": msg_id, "customer_id": data.customer_id, "category": template.category,
               "purpose": template.purpose, "template_id": template.id, "locale": data.locale,
               "to_address": to, "data": data.data}
        preparer = await Preparer.load(conn, ctx, template.channel,
                                       Signer(settings.secret_key, settings.base_url), db.keys)
        batch = await preparer.prepare(conn, [row])
        outcome = batch.outcomes[0] if batch.outcomes else None
        if outcome is not None and outcome.error_code == "render_error":
            raise InvalidInput(f"the template does not render for this customer: "
                               f"{outcome.reason}", field="data")
        planned = PlannedMessage(
            customer_id=data.customer_id, channel=template.channel,  # type: ignore[arg-type]
            category=template.category, purpose=template.purpose,  # type: ignore[arg-type]
            source_type="transactional", source_id=SOURCE_ID, step="",
            occurrence=data.idempotency_key, template_id=template.id, locale=data.locale,
            priority=data.priority, to_address=to, tags=tuple(data.tags), data=data.data,
            scheduled_at=max(data.scheduled_at, now) if data.scheduled_at else now,
            status="skipped" if outcome is not None else "planned",
            status_reason=outcome.reason if outcome is not None else None,
            request_hash=digest)
        created = bool((await insert_planned(conn, ctx, [planned], ids=[msg_id])).inserted)
        if not created:  # a concurrent call with the same key won the insert
            stored = await conn.fetchval("select request_hash from messages where id = $1",
                                         msg_id)
            if stored != digest:
                raise Conflict("this idempotency_key was used with a different request",
                               field="idempotency_key")
            return await fetch_message(conn, msg_id), False  # type: ignore[return-value]
        await record(conn, ctx, "message.requested", "message", msg_id,
                     {"template_id": template.id, "customer_id": str(data.customer_id),
                      "channel": template.channel, "status": planned.status})
        message = await fetch_message(conn, msg_id)
    assert message is not None
    if planned.status == "planned":
        await kick_dispatch(arq, settings, ctx.tenant_id, [template.channel])
    return message, True


def _address(channel: str, to: str | None, country: str) -> str | None:
    if to is None:
        return None
    kind = ADDRESS_KIND.get(channel)
    if kind is None:
        return to.strip()
    try:
        return normalise_identifier(kind, to, country)
    except InvalidInput as exc:
        raise InvalidInput(exc.detail, field="to") from None
