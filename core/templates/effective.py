"""What a tenant actually renders: HQ master ⊕ the tenant's approved variants.

For each locale the approved tenant variant wins over the HQ content, unless HQ locked the
template (then tenants run the HQ content as is). The locale is chosen per customer:
customer language → tenant default → the template's HQ default (`choose_locale`).
Loaded set-based for a whole dispatch batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import msgspec

from core.db import Connection
from core.templates.checks import renderer_for, source_of
from core.templates.locales import choose_locale
from core.templates.parts import RenderedMessage, TemplateSource
from core.templates.rendering import Renderer
from core.templates.schemas import Content
from core.templates.service import VISIBLE, content_of, load_partials


@dataclass(frozen=True)
class LocaleVersion:
    content: Content
    source: Literal["hq", "tenant"]
    revision: int
    variant_id: UUID | None = None


@dataclass
class EffectiveTemplate:
    id: str
    channel: str
    category: str
    purpose: str
    governance: str
    default_locale: str
    html_layout: str | None
    text_layout: str | None
    revision: int
    locales: dict[str, LocaleVersion] = field(default_factory=dict)

    def choose(self, customer_language: str | None, tenant_default: str) -> str:
        return choose_locale(customer_language, tenant_default, self.default_locale,
                             list(self.locales))


class RenderedContent(msgspec.Struct, frozen=True):
    subject: str | None
    text: str
    html: str | None
    params: list[str]
    provider_template: str | None


async def load_effective(conn: Connection, tenant_id: str,
                         template_ids: Iterable[str]) -> dict[str, EffectiveTemplate]:
    """Templates visible to the tenant, with their effective content per locale. Must run
    in the tenant's transaction (tenant variants are RLS-scoped)."""
    ids = list(set(template_ids))
    rows = await conn.fetch(
        f"""select t.id, t.channel, t.category, t.purpose, t.governance, t.default_locale,
                   t.html_layout, t.text_layout, t.revision
            from hq_templates t where t.id = any($2::text[]) and {VISIBLE}""",
        tenant_id, ids)
    templates = {r["id"]: EffectiveTemplate(**dict(r)) for r in rows}
    if not templates:
        return {}
    contents = await conn.fetch(
        """select template_id, locale, revision, subject, text, html, provider_template, params
           from hq_template_contents where template_id = any($1::text[])""", list(templates))
    for c in contents:
        templates[c["template_id"]].locales[c["locale"]] = LocaleVersion(
            content_of(c), "hq", c["revision"])
    variants = await conn.fetch(
        """select id, template_id, locale, based_on_revision as revision, subject, text, html,
                  provider_template, params
           from template_variants
           where template_id = any($1::text[]) and status = 'approved'""", list(templates))
    for v in variants:
        template = templates[v["template_id"]]
        if template.governance != "locked":
            template.locales[v["locale"]] = LocaleVersion(content_of(v), "tenant",
                                                          v["revision"], v["id"])
    return templates


class TemplateRenderers:
    """The renderers a batch needs: one per layout pair plus one plain (WhatsApp params),
    over the shared partials read once."""

    def __init__(self, partials: dict[str, str]) -> None:
        self.partials = partials
        self._by_layouts: dict[tuple[str | None, str | None], Renderer] = {}

    @classmethod
    async def load(cls, conn: Connection) -> TemplateRenderers:
        return cls(await load_partials(conn))

    def for_template(self, template: EffectiveTemplate) -> Renderer:
        return self._renderer(template.html_layout, template.text_layout)

    @property
    def plain(self) -> Renderer:
        return self._renderer(None, None)

    def _renderer(self, html_layout: str | None, text_layout: str | None) -> Renderer:
        key = (html_layout, text_layout)
        renderer = self._by_layouts.get(key)
        if renderer is None:
            renderer = self._by_layouts[key] = renderer_for(self.partials, *key)
        return renderer

    def render(self, template: EffectiveTemplate, content: Content,
               context: dict[str, Any]) -> RenderedContent:
        """Raises `TemplateRenderError` (undefined variable, nil value, limits...)."""
        rendered: RenderedMessage = self.for_template(template).render(
            source_of(content), context)
        params = [self.plain.render(TemplateSource(text=p), context).text
                  for p in content.params]
        return RenderedContent(subject=rendered.subject, text=rendered.text,
                               html=rendered.html, params=params,
                               provider_template=content.provider_template)
