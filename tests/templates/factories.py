"""HQ templates and tenant variants for tests and the cross-tenant walk."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import msgspec

from core.db import Database
from core.templates import service, variants
from core.templates.schemas import Content, HqTemplateCreate, PartialPut, VariantCreate
from tenants.context import HqContext, TenantContext

HQ = HqContext()
_seq = itertools.count()

CHARTER = ("<html><body>{{ content }}<hr>{% render 'footer', tenant: tenant, "
           "unsubscribe: message.unsubscribe_url %}</body></html>")
FOOTER = ("<p>{{ tenant.name }}{% if unsubscribe != blank %} · "
          "<a href=\"{{ unsubscribe }}\">Se désabonner</a>{% endif %}</p>")
TEXT_CHARTER = "{{ content }}\n--\n{{ tenant.name }}"


def unique_id(prefix: str = "tpl") -> str:
    return f"{prefix}-{next(_seq)}-{uuid.uuid4().hex[:6]}"


async def charter(db: Database) -> None:
    """The HQ editorial charter: an html layout with a shared footer, a text layout."""
    await service.put_partial(db, HQ, "footer", PartialPut(source=FOOTER))
    await service.put_partial(db, HQ, "charter", PartialPut(source=CHARTER))
    await service.put_partial(db, HQ, "text-charter", PartialPut(source=TEXT_CHARTER))


def email_content(lang: str = "fr") -> Content:
    if lang == "fr":
        return Content(subject="Bonjour {{ customer.first_name }}",
                       text="Votre ligne {{ event.line }} est perturbée.",
                       html="<p>Bonjour {{ customer.first_name }}, la ligne {{ event.line }} "
                            "est perturbée. <a href=\"https://reseau.example/info?l="
                            "{{ event.line }}&amp;x=1\">Détails</a></p>")
    return Content(subject="Hello {{ customer.first_name }}",
                   text="Your line {{ event.line }} is disrupted.",
                   html="<p>Hello {{ customer.first_name }}, line {{ event.line }} is "
                        "disrupted.</p>")


async def hq_template(db: Database, *, channel: str = "email", pilots: list[str] | None = None,
                      governance: str = "overridable", category: str = "alert",
                      purpose: str = "traffic_info", contents: dict[str, Any] | None = None,
                      default_locale: str = "fr-FR", layouts: bool = True,
                      **extra: Any) -> str:
    if layouts and channel == "email":
        await charter(db)
    template_id = unique_id(channel)
    if contents is None:
        contents = {"fr-FR": email_content("fr"), "en-GB": email_content("en")} \
            if channel == "email" else {"fr-FR": Content(text="Ligne {{ event.line }} : "
                                                              "{{ customer.first_name }}")}
    contents = {k: msgspec.convert(v, Content) if isinstance(v, dict) else v
                for k, v in contents.items()}
    await service.create_template(db, HQ, HqTemplateCreate(
        id=template_id, name=f"Test {channel}", channel=channel,  # type: ignore[arg-type]
        default_locale=default_locale, contents=contents, category=category,  # type: ignore[arg-type]
        purpose=purpose, governance=governance,  # type: ignore[arg-type]
        html_layout="charter" if layouts and channel == "email" else None,
        text_layout="text-charter" if layouts and channel == "email" else None,
        pilot_tenants=pilots or [], **extra))
    return template_id


async def make_template(world: Any) -> str:
    cached = getattr(world, "_template_id", None)
    if cached is None:
        cached = await hq_template(world.db, pilots=[world.ctx.tenant_id])
        world._template_id = cached
    return cached


async def make_variant(world: Any) -> str:
    template_id = await make_template(world)
    ctx: TenantContext = world.ctx
    variant = await variants.create_variant(world.db, ctx, template_id, VariantCreate(
        locale=ctx.default_locale, content=email_content("fr")))
    return str(variant.id)
