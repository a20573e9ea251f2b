"""Tenant variants and translations of HQ templates: draft → submitted → approved.

A tenant writes a variant for one of its locales (a translation, or a local adaptation of an
HQ locale), submits it, and the tenant's own admin approves it; the approved variant then
replaces the HQ content for that locale, until HQ locks the template. At most one variant is
in the works and one approved per template and locale; approving supersedes the previous one.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from core.audit.service import record
from core.db import Connection, Database
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.pagination import Page, check_limit, decode_cursor, page_of
from core.templates.checks import (
    analyse,
    check_channel_content,
    refuse_blocking,
    renderer_for,
)
from core.templates.context import check_settings, known_variables
from core.templates.schemas import (
    Decision,
    LocaleState,
    TemplateSettings,
    TemplateSettingsPut,
    TenantTemplate,
    Variant,
    VariantCreate,
    VariantUpdate,
)
from core.templates.service import VISIBLE, content_of, load_partials
from tenants.context import TenantContext

_T_COLUMNS = ("t.id, t.name, t.channel, t.category, t.purpose, t.description, t.governance, "
              "t.default_locale, t.revision, t.html_layout, t.text_layout")
_V_COLUMNS = ("v.id, v.template_id, v.locale, v.status, v.subject, v.text, v.html, "
              "v.provider_template, v.params, v.based_on_revision, v.comment, v.created_at, "
              "v.created_by, v.updated_at, v.submitted_at, v.submitted_by, v.decided_at, "
              "v.decided_by, coalesce(c.revision, 0) as hq_revision")
_V_FROM = """template_variants v
             left join hq_template_contents c on c.template_id = v.template_id
                                             and c.locale = v.locale"""


async def visible_template(conn: Connection, ctx: TenantContext, template_id: str,
                           *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"select {_T_COLUMNS} from hq_templates t where t.id = $2 and {VISIBLE}"
        + (" for share" if lock else ""), ctx.tenant_id, template_id)
    if row is None:
        raise NotFound(f"template {template_id!r} not found")
    return row


def _variant(row: Any, problems: list | None = None) -> Variant:
    data = dict(row)
    hq_revision = data.pop("hq_revision")
    content = content_of(row)
    for key in ("subject", "text", "html", "provider_template", "params"):
        data.pop(key)
    return Variant(**data, content=content,
                   outdated=hq_revision > data["based_on_revision"], problems=problems or [])


async def _problems(conn: Connection, template: asyncpg.Record, content: Any) -> list:
    partials = await load_partials(conn)
    renderer = renderer_for(partials, template["html_layout"], template["text_layout"])
    return analyse(renderer, renderer_for(partials), content, await known_variables(conn))


async def _fetch_variant(conn: Connection, template_id: str, variant_id: UUID,
                         *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"select {_V_COLUMNS} from {_V_FROM} where v.template_id = $1 and v.id = $2"
        + (" for update of v" if lock else ""), template_id, variant_id)
    if row is None:
        raise NotFound(f"variant {variant_id} not found")
    return row


def _refuse_if_locked(template: asyncpg.Record) -> None:
    if template["governance"] == "locked":
        raise Conflict(f"template {template['id']!r} is locked by HQ against local edits",
                       field="template_id")


# -- reading ------------------------------------------------------------------------------

async def _tenant_template(conn: Connection, row: asyncpg.Record) -> TenantTemplate:
    hq = await conn.fetch(
        "select locale, revision from hq_template_contents where template_id = $1", row["id"])
    variants = await conn.fetch(
        """select id, locale, status from template_variants
           where template_id = $1 and status in ('draft', 'submitted', 'approved')""",
        row["id"])
    states: dict[str, LocaleState] = {
        r["locale"]: LocaleState(locale=r["locale"], source="hq", hq_revision=r["revision"])
        for r in hq}
    for v in variants:
        state = states.setdefault(v["locale"], LocaleState(locale=v["locale"], source="hq"))
        if v["status"] == "approved" and row["governance"] != "locked":
            state.source, state.variant_id = "tenant", v["id"]
        elif v["status"] != "approved":
            state.pending_variant_id, state.pending_status = v["id"], v["status"]
    # A locale with only a pending draft is not sendable yet: listed, but still "hq" (none).
    fields = {k: row[k] for k in ("id", "name", "channel", "category", "purpose",
                                  "description", "governance", "default_locale", "revision")}
    return TenantTemplate(**fields, locales=sorted(states.values(), key=lambda s: s.locale))


async def get_tenant_template(db: Database, ctx: TenantContext,
                              template_id: str) -> TenantTemplate:
    async with db.tenant_tx(ctx) as conn:
        return await _tenant_template(conn, await visible_template(conn, ctx, template_id))


async def list_tenant_templates(db: Database, ctx: TenantContext, *, cursor: str | None,
                                limit: int, channel: str | None = None) -> Page[TenantTemplate]:
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.tenant_tx(ctx) as conn:
        rows = await conn.fetch(
            f"""select {_T_COLUMNS} from hq_templates t
                where {VISIBLE} and ($2::text is null or t.id > $2)
                  and ($3::text is null or t.channel = $3)
                order by t.id limit $4""", ctx.tenant_id, after, channel, limit + 1)
        items = [await _tenant_template(conn, r) for r in rows]
    return page_of(items, limit, lambda t: t.id)


async def list_variants(db: Database, ctx: TenantContext, template_id: str, *,
                        cursor: str | None, limit: int) -> Page[Variant]:
    check_limit(limit)
    after = decode_cursor(cursor, tuple[datetime, UUID])
    async with db.tenant_tx(ctx) as conn:
        await visible_template(conn, ctx, template_id)
        rows = await conn.fetch(
            f"""select {_V_COLUMNS} from {_V_FROM}
                where v.template_id = $1
                  and ($2::timestamptz is null or (v.created_at, v.id) < ($2, $3::uuid))
                order by v.created_at desc, v.id desc limit $4""",
            template_id, *(after or (None, None)), limit + 1)
    return page_of([_variant(r) for r in rows], limit, lambda v: (v.created_at, v.id))


async def get_variant(db: Database, ctx: TenantContext, template_id: str,
                      variant_id: UUID) -> Variant:
    async with db.tenant_tx(ctx) as conn:
        template = await visible_template(conn, ctx, template_id)
        row = await _fetch_variant(conn, template_id, variant_id)
        return _variant(row, await _problems(conn, template, content_of(row)))


# -- workflow -----------------------------------------------------------------------------

async def create_variant(db: Database, ctx: TenantContext, template_id: str,
                         data: VariantCreate) -> Variant:
    if data.locale not in {ctx.default_locale, *ctx.locales}:
        raise InvalidInput(f"{data.locale!r} is not one of the tenant's locales "
                           f"{sorted({ctx.default_locale, *ctx.locales})}", field="locale")
    async with db.tenant_tx(ctx) as conn:
        template = await visible_template(conn, ctx, template_id, lock=True)
        _refuse_if_locked(template)
        check_channel_content(template["channel"], data.content, "content")
        c = data.content
        variant_id = uuid.uuid4()
        try:
            await conn.execute(
                """insert into template_variants (tenant_id, id, template_id, locale, subject,
                       text, html, provider_template, params, based_on_revision, comment,
                       created_by)
                   values ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                           coalesce((select revision from hq_template_contents
                                     where template_id = $3 and locale = $4), $10),
                           $11, $12)""",
                ctx.tenant_id, variant_id, template_id, data.locale, c.subject,
                c.text, c.html, c.provider_template, c.params, template["revision"],
                data.comment, ctx.actor.label)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a variant of {template_id!r} for {data.locale!r} is already in "
                           "the works: edit or decide it first", field="locale") from None
        await record(conn, ctx, "template.variant_created", "template_variant",
                     str(variant_id), {"template_id": template_id, "locale": data.locale})
        row = await _fetch_variant(conn, template_id, variant_id)
        return _variant(row, await _problems(conn, template, c))


async def update_variant(db: Database, ctx: TenantContext, template_id: str,
                         variant_id: UUID, data: VariantUpdate) -> Variant:
    async with db.tenant_tx(ctx) as conn:
        template = await visible_template(conn, ctx, template_id, lock=True)
        _refuse_if_locked(template)
        row = await _fetch_variant(conn, template_id, variant_id, lock=True)
        if row["status"] != "draft":
            raise Conflict(f"only a draft can be edited; this variant is {row['status']}",
                           field="status")
        content = data.content if data.content is not msgspec.UNSET else content_of(row)
        check_channel_content(template["channel"], content, "content")
        comment = data.comment if data.comment is not msgspec.UNSET else row["comment"]
        await conn.execute(
            """update template_variants set subject = $2, text = $3, html = $4,
                   provider_template = $5, params = $6, comment = $7, updated_at = now(),
                   based_on_revision = coalesce((select revision from hq_template_contents c
                       where c.template_id = $8 and c.locale = template_variants.locale),
                       based_on_revision)
               where id = $1""",
            variant_id, content.subject, content.text, content.html, content.provider_template,
            content.params, comment, template_id)
        await record(conn, ctx, "template.variant_updated", "template_variant", str(variant_id),
                     {"template_id": template_id})
        row = await _fetch_variant(conn, template_id, variant_id)
        return _variant(row, await _problems(conn, template, content))


async def _transition(db: Database, ctx: TenantContext, template_id: str, variant_id: UUID,
                      *, expected: str, to: str, decision: Decision | None = None) -> Variant:
    async with db.tenant_tx(ctx) as conn:
        template = await visible_template(conn, ctx, template_id, lock=True)
        _refuse_if_locked(template)
        row = await _fetch_variant(conn, template_id, variant_id, lock=True)
        if row["status"] != expected:
            raise Conflict(f"the variant is {row['status']}, not {expected}", field="status")
        if to == "submitted":
            # Undefined fields would blank or fail real sends: refused before review.
            refuse_blocking(await _problems(conn, template, content_of(row)), "content")
            await conn.execute(
                """update template_variants set status = 'submitted', submitted_at = now(),
                       submitted_by = $2, updated_at = now() where id = $1""",
                variant_id, ctx.actor.label)
        else:
            if to == "approved":
                await conn.execute(
                    """update template_variants set status = 'superseded', updated_at = now()
                       where template_id = $1 and locale = $2 and status = 'approved'""",
                    template_id, row["locale"])
            await conn.execute(
                """update template_variants set status = $2, decided_at = now(),
                       decided_by = $3, comment = coalesce($4, comment), updated_at = now()
                   where id = $1""",
                variant_id, to, ctx.actor.label, decision.comment if decision else None)
        await record(conn, ctx, f"template.variant_{to}", "template_variant", str(variant_id),
                     {"template_id": template_id, "locale": row["locale"]})
        return _variant(await _fetch_variant(conn, template_id, variant_id))


async def submit_variant(db: Database, ctx: TenantContext, template_id: str,
                         variant_id: UUID) -> Variant:
    return await _transition(db, ctx, template_id, variant_id, expected="draft",
                             to="submitted")


def _tenant_admin_only(ctx: TenantContext) -> None:
    if ctx.actor.kind == "hq_key":
        raise Forbidden("a tenant's variants are approved by the tenant's own admin, not HQ")


async def approve_variant(db: Database, ctx: TenantContext, template_id: str,
                          variant_id: UUID, decision: Decision) -> Variant:
    _tenant_admin_only(ctx)
    return await _transition(db, ctx, template_id, variant_id, expected="submitted",
                             to="approved", decision=decision)


async def reject_variant(db: Database, ctx: TenantContext, template_id: str,
                         variant_id: UUID, decision: Decision) -> Variant:
    _tenant_admin_only(ctx)
    return await _transition(db, ctx, template_id, variant_id, expected="submitted",
                             to="rejected", decision=decision)


# -- settings -----------------------------------------------------------------------------

async def get_settings(db: Database, ctx: TenantContext) -> TemplateSettings:
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow("select settings, updated_at, updated_by from template_settings")
    if row is None:
        return TemplateSettings(values={})
    return TemplateSettings(values=row["settings"], updated_at=row["updated_at"],
                            updated_by=row["updated_by"])


async def put_settings(db: Database, ctx: TenantContext,
                       data: TemplateSettingsPut) -> TemplateSettings:
    check_settings(data.values)
    async with db.tenant_tx(ctx) as conn:
        row = await conn.fetchrow(
            """insert into template_settings (tenant_id, settings, updated_by)
               values ($1, $2, $3)
               on conflict (tenant_id) do update set settings = excluded.settings,
                   updated_at = now(), updated_by = excluded.updated_by
               returning settings, updated_at, updated_by""",
            ctx.tenant_id, data.values, ctx.actor.label)
        await record(conn, ctx, "template.settings_updated", "template_settings", None,
                     {"keys": sorted(data.values)})
    return TemplateSettings(values=row["settings"], updated_at=row["updated_at"],
                            updated_by=row["updated_by"])
