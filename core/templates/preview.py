"""Previews: render a template for a real customer or for sample data, exactly as a send
would, so an undefined variable is an error here and never a blank in a sent message."""

from __future__ import annotations

from typing import Any

from core.db import Database
from core.errors import InvalidInput, NotFound
from core.templates.checks import analyse, renderer_for
from core.templates.context import (
    known_variables,
    load_customers,
    render_context,
    tenant_namespace,
)
from core.templates.effective import (
    EffectiveTemplate,
    LocaleVersion,
    RenderedContent,
    TemplateRenderers,
    load_effective,
)
from core.templates.locales import choose_locale
from core.templates.parts import TemplateProblem
from core.templates.schemas import HqPreviewRequest, Preview, PreviewRequest
from core.templates.service import content_of, fetch_template, load_partials
from core.templates.variants import visible_template
from tenants.context import TenantContext

PREVIEW_MESSAGE_ID = "preview"


def _preview(template: EffectiveTemplate, locale: str, version: LocaleVersion,
             rendered: RenderedContent, problems: list[TemplateProblem]) -> Preview:
    return Preview(template_id=template.id, channel=template.channel,  # type: ignore[arg-type]
                   locale=locale, source=version.source, subject=rendered.subject,
                   text=rendered.text, html=rendered.html, params=rendered.params,
                   provider_template=rendered.provider_template, problems=problems)


def _message(base_url: str, template: EffectiveTemplate, locale: str) -> dict[str, Any]:
    return {"id": PREVIEW_MESSAGE_ID, "channel": template.channel, "locale": locale,
            "category": template.category,
            "unsubscribe_url": f"{base_url.rstrip('/')}/t/u/{PREVIEW_MESSAGE_ID}"}


async def preview_for_tenant(db: Database, ctx: TenantContext, template_id: str,
                             request: PreviewRequest, *, base_url: str) -> Preview:
    async with db.tenant_tx(ctx) as conn:
        await visible_template(conn, ctx, template_id)
        template = (await load_effective(conn, ctx.tenant_id, [template_id]))[template_id]
        language = None
        if request.customer_id is not None:
            found = await load_customers(conn, [request.customer_id])
            if request.customer_id not in found or found[request.customer_id].erased:
                raise InvalidInput("no such customer in this tenant", field="customer_id")
            record = found[request.customer_id]
            customer, language = record.fields, record.language
        else:
            customer = request.customer or {}
        if request.variant_id is not None:
            row = await conn.fetchrow(
                """select id, locale, based_on_revision, subject, text, html, provider_template,
                          params from template_variants where template_id = $1 and id = $2""",
                template_id, request.variant_id)
            if row is None:
                raise InvalidInput("no such variant of this template", field="variant_id")
            locale = row["locale"]
            version = LocaleVersion(content_of(row), "tenant", row["based_on_revision"],
                                    row["id"])
        else:
            if request.locale is not None and request.locale not in template.locales:
                raise InvalidInput(f"no {request.locale!r} content; available: "
                                   f"{sorted(template.locales)}", field="locale")
            locale = request.locale or template.choose(language, ctx.default_locale)
            version = template.locales[locale]
        tenant = await tenant_namespace(conn, ctx)
        renderers = await TemplateRenderers.load(conn)
        known = await known_variables(conn)
    context = render_context(customer, request.event, tenant,
                             _message(base_url, template, locale))
    rendered = renderers.render(template, version.content, context)
    problems = analyse(renderers.for_template(template), renderers.plain, version.content,
                       known)
    return _preview(template, locale, version, rendered, problems)


async def preview_for_hq(db: Database, template_id: str, request: HqPreviewRequest, *,
                         base_url: str) -> Preview:
    async with db.hq_tx() as conn:
        hq = await fetch_template(conn, template_id)
        if hq is None:
            raise NotFound(f"template {template_id!r} not found")
        partials = await load_partials(conn)
    template = EffectiveTemplate(
        id=hq.id, channel=hq.channel, category=hq.category, purpose=hq.purpose,
        governance=hq.governance, default_locale=hq.default_locale,
        html_layout=hq.html_layout, text_layout=hq.text_layout, revision=hq.revision,
        locales={c.locale: LocaleVersion(c.content, "hq", c.revision) for c in hq.contents})
    if request.locale is not None and request.locale not in template.locales:
        raise InvalidInput(f"no {request.locale!r} content; available: "
                           f"{sorted(template.locales)}", field="locale")
    locale = request.locale or choose_locale(request.customer.get("language"),
                                             hq.default_locale, hq.default_locale,
                                             list(template.locales))
    version = template.locales[locale]
    tenant = {"id": "sample", "name": "Sample network", "country": "FR",
              "timezone": "Europe/Paris", "locale": locale, **request.tenant}
    renderers = TemplateRenderers(partials)
    context = render_context(request.customer, request.event, tenant,
                             _message(base_url, template, locale))
    rendered = renderers.render(template, version.content, context)
    problems = analyse(renderers.for_template(template), renderer_for(partials),
                       version.content)
    return _preview(template, locale, version, rendered, problems)
