"""From claimed rows to ready-to-send messages, set-based per batch.

For each claimed message: the customer (merged profiles resolve to the survivor), the
address, consent for the message's purpose on its channel (not needed when the category is
transactional), the suppression list, the effective template in the customer's locale, the
rendering, and for email the tracked links, open pixel and unsubscribe link. A message that
must not or cannot go out gets its outcome here and never reaches a provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from core.db import Connection
from core.identity.keys import Keys
from core.messaging.statuses import ADDRESS_KIND, address_hash
from core.messaging.tracking import Signer, track_html
from core.model.service import load_suppression_key
from core.templates.context import load_customers, render_context, tenant_namespace
from core.templates.effective import EffectiveTemplate, TemplateRenderers, load_effective
from core.templates.rendering import TemplateRenderError
from plugins.builtin.channels.base import OutboundMessage
from plugins.manager import PluginManager
from plugins.types import EligibilityCandidate, EligibilityVerdict
from tenants.context import TenantContext


@dataclass
class Outcome:
    """What happened to one claimed message; written back set-based."""

    message_id: str
    status: str  # sent | failed | skipped | planned (retry) | released | delayed
    reason: str | None = None
    error_code: str | None = None
    provider_message_id: str | None = None
    to_address: str | None = None
    locale: str | None = None
    retry_in: float | None = None
    suppress: str | None = None  # suppression reason for the address, if any


def delayed(message_id: str, verdict: EligibilityVerdict) -> Outcome:
    until = verdict.until or datetime.now(UTC) + timedelta(minutes=15)
    wait = max(1.0, (until - datetime.now(UTC)).total_seconds())
    return Outcome(message_id, "delayed", reason=f"rule {verdict.rule or '?'}: "
                   f"{verdict.reason}"[:300], retry_in=wait)


@dataclass
class Eligibility:
    """The tenant's enabled rule plugins (`relais_check_eligibility`), asked once per batch.
    A veto skips the message with the rule's reason, a delay puts it back for later."""

    plugins: PluginManager
    rules: dict[str, msgspec.Struct]

    async def verdicts(self, ctx: TenantContext, rows: Sequence[Any],
                       customers: dict[UUID, Any]) -> dict[str, EligibilityVerdict]:
        candidates = []
        for r in rows:
            customer = customers.get(r["customer_id"])
            if customer is None:
                continue
            candidates.append(EligibilityCandidate(
                message_id=r["id"], tenant_id=ctx.tenant_id, customer_id=customer.id,
                channel=r["channel"], category=r["category"], scheduled_at=r["scheduled_at"],
                timezone=ctx.timezone, source=f"{r['source_type']}:{r['source_id']}:{r['step']}",
                tags=tuple(r["tags"]), profile=customer.fields))
        return await self.plugins.check_eligibility(candidates, self.rules)


@dataclass
class Prepared:
    outbound: OutboundMessage
    to_address: str
    locale: str


@dataclass
class Batch:
    ready: list[Prepared]
    outcomes: list[Outcome]


class Preparer:
    """Per dispatch run: the tenant namespace and renderers are read once."""

    def __init__(self, ctx: TenantContext, channel: str, signer: Signer, keys: Keys,
                 tenant: dict[str, Any], renderers: TemplateRenderers,
                 rules: Eligibility | None = None) -> None:
        self.ctx, self.channel, self.signer, self.keys = ctx, channel, signer, keys
        self.tenant, self.renderers, self.rules = tenant, renderers, rules

    @classmethod
    async def load(cls, conn: Connection, ctx: TenantContext, channel: str,
                   signer: Signer, keys: Keys, rules: Eligibility | None = None) -> Preparer:
        """`keys`: the `db.keys` the suppression list is matched with."""
        return cls(ctx, channel, signer, keys, await tenant_namespace(conn, ctx),
                   await TemplateRenderers.load(conn), rules)

    async def prepare(self, conn: Connection, rows: Sequence[Any]) -> Batch:
        customers = await load_customers(conn, [r["customer_id"] for r in rows])
        templates = await load_effective(conn, self.ctx.tenant_id,
                                         {r["template_id"] for r in rows if r["template_id"]})
        granted = await self._granted(conn, rows, customers)
        addresses = {r["id"]: self._address(r, customers.get(r["customer_id"])) for r in rows}
        suppressed = await self._suppressed(conn, [a for a in addresses.values() if a])
        batch = Batch(ready=[], outcomes=[])
        verdicts = await self.rules.verdicts(self.ctx, rows, customers) if self.rules else {}
        for row in rows:
            customer = customers.get(row["customer_id"])
            address = addresses[row["id"]]
            verdict = verdicts.get(row["id"])
            skip = None
            if customer is None:
                skip = "customer_not_found"
            elif customer.erased:
                skip = "customer_erased"
            elif row["category"] != "transactional" and \
                    (customer.id, row["purpose"]) not in granted:
                skip = "no_consent"
            elif not address:
                skip = "no_address"
            elif address in suppressed:
                skip = "suppressed"
            elif verdict is not None and verdict.action == "veto":
                skip = f"rule {verdict.rule or '?'}: {verdict.reason}"[:300]
            if verdict is not None and verdict.action == "delay" and not skip:
                batch.outcomes.append(delayed(row["id"], verdict))
                continue
            if skip:
                batch.outcomes.append(Outcome(row["id"], "skipped", reason=skip,
                                              to_address=address))
                continue
            template = templates.get(row["template_id"]) if row["template_id"] else None
            if template is None or template.channel != self.channel:
                batch.outcomes.append(Outcome(row["id"], "failed", error_code="template",
                                              reason="template unavailable for this tenant "
                                                     "or channel", to_address=address))
                continue
            assert customer is not None and address is not None
            try:
                batch.ready.append(self._render(row, customer, template, address))
            except TemplateRenderError as exc:
                batch.outcomes.append(Outcome(row["id"], "failed", error_code="render_error",
                                              reason=exc.detail[:300], to_address=address))
        return batch

    def _address(self, row: Any, customer: Any) -> str | None:
        if row["to_address"]:
            return row["to_address"]
        if customer is None:
            return None
        if self.channel == "email":
            return customer.email
        if self.channel in ("sms", "whatsapp"):
            return customer.phone
        if self.channel == "push":
            return customer.push_token
        return str(customer.id)  # webhook: the receiver identifies the customer

    async def _granted(self, conn: Connection, rows: Sequence[Any],
                       customers: dict[UUID, Any]) -> set[tuple[UUID, str]]:
        ids = list({c.id for c in customers.values()})
        found = await conn.fetch(
            """select customer_id, purpose from consents
               where channel = $1 and customer_id = any($2::uuid[]) and status = 'granted'""",
            self.channel, ids)
        return {(r["customer_id"], r["purpose"]) for r in found}

    async def _suppressed(self, conn: Connection, addresses: list[str]) -> set[str]:
        kind = ADDRESS_KIND.get(self.channel)
        if kind is None or not addresses:
            return set()
        key = await load_suppression_key(conn, self.ctx, self.keys)
        hashes = {}
        for address in set(addresses):
            digest = address_hash(kind, address, key, self.ctx.country)
            if digest is not None:
                hashes[digest] = address
        rows = await conn.fetch(
            "select value_hash from suppressions where kind = $1 and value_hash = any($2)",
            kind, list(hashes))
        return {hashes[r["value_hash"]] for r in rows}

    def _render(self, row: Any, customer: Any, template: EffectiveTemplate,
                address: str) -> Prepared:
        ctx, signer = self.ctx, self.signer
        locale = row["locale"] if row["locale"] in template.locales else \
            template.choose(customer.language, ctx.default_locale)
        unsubscribe = signer.unsubscribe_url(ctx.tenant_id, row["id"]) \
            if row["purpose"] != "transactional" else None
        message = {"id": row["id"], "channel": self.channel, "locale": locale,
                   "category": row["category"], "unsubscribe_url": unsubscribe or ""}
        context = render_context(customer.fields, row["data"] or {}, self.tenant, message)
        rendered = self.renderers.render(template, template.locales[locale].content, context)
        html = rendered.html
        if html is not None and self.channel == "email":
            html = track_html(html, signer, ctx.tenant_id, row["id"],
                              untracked={unsubscribe} if unsubscribe else set())
        data = {"message_id": row["id"]}
        if self.channel == "webhook":
            data |= {"customer_id": str(customer.id), "template_id": template.id,
                     "locale": locale, "channel": self.channel}
        outbound = OutboundMessage(
            message_id=row["id"], tenant_id=ctx.tenant_id, channel=self.channel, to=address,
            text=rendered.text, category=row["category"], subject=rendered.subject, html=html,
            whatsapp_template=rendered.provider_template,
            whatsapp_language=locale.replace("-", "_") if rendered.provider_template else None,
            template_params=rendered.params,
            unsubscribe_url=unsubscribe if self.channel == "email" else None, data=data)
        return Prepared(outbound=outbound, to_address=address, locale=locale)
