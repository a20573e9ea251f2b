"""HQ master templates and the shared partials of the editorial charter (HQ-wide tables).

HQ publishes a template per channel with one content per locale; every content edit bumps
the template's `revision`, which tenant variants record so an HQ change marks them outdated.
`pilot_tenants` restricts a new template to chosen tenants until HQ propagates it to all.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from core.audit.service import record_hq
from core.db import Connection, Database
from core.errors import Conflict, InvalidInput, NotFound
from core.pagination import Page, check_limit, decode_cursor, page_of
from core.templates.checks import (
    analyse,
    check_channel_content,
    checked_renderer,
    refuse_blocking,
)
from core.templates.schemas import (
    Content,
    HqTemplate,
    HqTemplateCreate,
    HqTemplateUpdate,
    LocaleContent,
    Partial,
    PartialPut,
)
from tenants.context import HqContext

_COLUMNS = ("id, name, channel, category, purpose, description, governance, default_locale, "
            "html_layout, text_layout, pilot_tenants, revision, created_at, updated_at, "
            "archived_at")
# Visible to a tenant: not archived, and either propagated to all or piloted by it.
VISIBLE = "(t.archived_at is null and (t.pilot_tenants = '{}' or $1 = any(t.pilot_tenants)))"


def content_of(row: Any) -> Content:
    return Content(text=row["text"], subject=row["subject"], html=row["html"],
                   provider_template=row["provider_template"], params=list(row["params"]))


async def load_partials(conn: Connection) -> dict[str, str]:
    rows = await conn.fetch("select name, source from hq_template_partials")
    return {r["name"]: r["source"] for r in rows}


async def fetch_template(conn: Connection, template_id: str) -> HqTemplate | None:
    row = await conn.fetchrow(f"select {_COLUMNS} from hq_templates where id = $1",
                              template_id)
    if row is None:
        return None
    contents = await conn.fetch(
        """select locale, revision, subject, text, html, provider_template, params
           from hq_template_contents where template_id = $1 order by locale""", template_id)
    return HqTemplate(**dict(row), contents=[
        LocaleContent(locale=c["locale"], revision=c["revision"], content=content_of(c))
        for c in contents])


async def _check_contents(conn: Connection, channel: str, contents: dict[str, Content],
                          html_layout: str | None, text_layout: str | None) -> None:
    partials = await load_partials(conn)
    for name, field in ((html_layout, "html_layout"), (text_layout, "text_layout")):
        if name is not None and name not in partials:
            raise InvalidInput(f"layout {name!r} is not a shared partial", field=field)
    renderer = checked_renderer(partials, html_layout, text_layout, "html_layout")
    plain = checked_renderer(partials, None, None, "contents")
    for locale, content in contents.items():
        field = f"contents.{locale}"
        check_channel_content(channel, content, field)
        refuse_blocking(analyse(renderer, plain, content), field)


async def _check_pilots(conn: Connection, tenant_ids: list[str]) -> None:
    if not tenant_ids:
        return
    known = await conn.fetch("select id from tenants where id = any($1)", tenant_ids)
    missing = sorted(set(tenant_ids) - {r["id"] for r in known})
    if missing:
        raise InvalidInput(f"unknown tenants: {missing}", field="pilot_tenants")


async def _write_contents(conn: Connection, template_id: str, revision: int,
                          contents: dict[str, Content]) -> None:
    await conn.executemany(
        """insert into hq_template_contents (template_id, locale, subject, text, html,
               provider_template, params, revision)
           values ($1, $2, $3, $4, $5, $6, $7, $8)
           on conflict (template_id, locale) do update
           set subject = excluded.subject, text = excluded.text, html = excluded.html,
               provider_template = excluded.provider_template, params = excluded.params,
               revision = excluded.revision, updated_at = now()""",
        [(template_id, locale, c.subject, c.text, c.html, c.provider_template, c.params,
          revision) for locale, c in contents.items()])


async def create_template(db: Database, hq: HqContext, data: HqTemplateCreate) -> HqTemplate:
    if data.default_locale not in data.contents:
        raise InvalidInput(f"contents must include the default locale {data.default_locale!r}",
                           field="contents")
    async with db.hq_tx() as conn:
        await _check_pilots(conn, data.pilot_tenants)
        await _check_contents(conn, data.channel, data.contents, data.html_layout,
                              data.text_layout)
        try:
            await conn.execute(
                """insert into hq_templates (id, name, channel, category, purpose, description,
                       governance, default_locale, html_layout, text_layout, pilot_tenants,
                       created_by, updated_by)
                   values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)""",
                data.id, data.name, data.channel, data.category, data.purpose,
                data.description, data.governance, data.default_locale, data.html_layout,
                data.text_layout, data.pilot_tenants, hq.actor.label)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"template {data.id!r} already exists", field="id") from None
        await _write_contents(conn, data.id, 1, data.contents)
        await record_hq(conn, hq, "template.created", "template", data.id,
                        {"channel": data.channel, "locales": sorted(data.contents),
                         "governance": data.governance, "pilot_tenants": data.pilot_tenants})
        return await fetch_template(conn, data.id)  # type: ignore[return-value]


async def get_template(db: Database, template_id: str) -> HqTemplate:
    async with db.hq_tx() as conn:
        template = await fetch_template(conn, template_id)
    if template is None:
        raise NotFound(f"template {template_id!r} not found")
    return template


async def list_templates(db: Database, *, cursor: str | None, limit: int,
                         channel: str | None = None) -> Page[HqTemplate]:
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.hq_tx() as conn:
        rows = await conn.fetch(
            f"""select {_COLUMNS} from hq_templates
                where ($1::text is null or id > $1) and ($2::text is null or channel = $2)
                order by id limit $3""", after, channel, limit + 1)
    return page_of([HqTemplate(**dict(r)) for r in rows], limit, lambda t: t.id)


async def update_template(db: Database, hq: HqContext, template_id: str,
                          patch: HqTemplateUpdate) -> HqTemplate:
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with db.hq_tx() as conn:
        current = await conn.fetchrow(
            "select * from hq_templates where id = $1 for update", template_id)
        if current is None:
            raise NotFound(f"template {template_id!r} not found")
        if "pilot_tenants" in changes:
            await _check_pilots(conn, changes["pilot_tenants"])
        if "default_locale" in changes:
            has = await conn.fetchval(
                "select 1 from hq_template_contents where template_id = $1 and locale = $2",
                template_id, changes["default_locale"])
            if not has:
                raise InvalidInput("the default locale needs a content first",
                                   field="default_locale")
        if "html_layout" in changes or "text_layout" in changes:
            contents = await conn.fetch(
                "select * from hq_template_contents where template_id = $1", template_id)
            await _check_contents(
                conn, current["channel"], {c["locale"]: content_of(c) for c in contents},
                changes.get("html_layout", current["html_layout"]),
                changes.get("text_layout", current["text_layout"]))
        archived = changes.pop("archived", None)
        assignments = [f"{name} = ${i + 2}" for i, name in enumerate(changes)]
        if archived is not None:
            assignments.append("archived_at = " + ("now()" if archived else "null"))
        if assignments:
            # Layouts change what every locale renders: that is a new revision too.
            bump = ", revision = revision + 1" if {"html_layout", "text_layout"} & set(
                changes) else ""
            await conn.execute(
                f"""update hq_templates set {", ".join(assignments)}{bump}, updated_at = now(),
                        updated_by = ${len(changes) + 2} where id = $1""",
                template_id, *changes.values(), hq.actor.label)
            details = {**changes, **({"archived": archived} if archived is not None else {})}
            await record_hq(conn, hq, "template.updated", "template", template_id, details)
        return await fetch_template(conn, template_id)  # type: ignore[return-value]


async def put_content(db: Database, hq: HqContext, template_id: str, locale: str,
                      content: Content) -> HqTemplate:
    async with db.hq_tx() as conn:
        current = await conn.fetchrow(
            "select * from hq_templates where id = $1 for update", template_id)
        if current is None:
            raise NotFound(f"template {template_id!r} not found")
        await _check_contents(conn, current["channel"], {locale: content},
                              current["html_layout"], current["text_layout"])
        revision = await conn.fetchval(
            """update hq_templates set revision = revision + 1, updated_at = now(),
                   updated_by = $2 where id = $1 returning revision""",
            template_id, hq.actor.label)
        await _write_contents(conn, template_id, revision, {locale: content})
        await record_hq(conn, hq, "template.content_updated", "template", template_id,
                        {"locale": locale, "revision": revision})
        return await fetch_template(conn, template_id)  # type: ignore[return-value]


async def delete_content(db: Database, hq: HqContext, template_id: str,
                         locale: str) -> HqTemplate:
    async with db.hq_tx() as conn:
        current = await conn.fetchrow(
            "select * from hq_templates where id = $1 for update", template_id)
        if current is None:
            raise NotFound(f"template {template_id!r} not found")
        if locale == current["default_locale"]:
            raise Conflict("the default locale cannot be removed", field="locale")
        deleted = await conn.fetchval(
            """delete from hq_template_contents where template_id = $1 and locale = $2
               returning locale""", template_id, locale)
        if deleted is None:
            raise NotFound(f"template {template_id!r} has no {locale!r} content")
        await conn.execute(
            """update hq_templates set revision = revision + 1, updated_at = now(),
                   updated_by = $2 where id = $1""", template_id, hq.actor.label)
        await record_hq(conn, hq, "template.content_deleted", "template", template_id,
                        {"locale": locale})
        return await fetch_template(conn, template_id)  # type: ignore[return-value]


# -- partials -----------------------------------------------------------------------------

async def put_partial(db: Database, hq: HqContext, name: str, data: PartialPut) -> Partial:
    async with db.hq_tx() as conn:
        await conn.execute("select pg_advisory_xact_lock(hashtext('template-partials'))")
        partials = await load_partials(conn) | {name: data.source}
        # Every layout in use must still wrap its content once this partial changes.
        layouts = await conn.fetch(
            """select distinct html_layout, text_layout from hq_templates
               where archived_at is null""")
        checked_renderer(partials, None, None, "source")
        for row in layouts:
            checked_renderer(partials, row["html_layout"], row["text_layout"], "source")
        row = await conn.fetchrow(
            """insert into hq_template_partials (name, source, description, updated_by)
               values ($1, $2, $3, $4)
               on conflict (name) do update
               set source = excluded.source, description = excluded.description,
                   revision = hq_template_partials.revision + 1, updated_at = now(),
                   updated_by = excluded.updated_by
               returning name, source, description, revision, updated_at""",
            name, data.source, data.description, hq.actor.label)
        await record_hq(conn, hq, "template.partial_updated", "template_partial", name,
                        {"revision": row["revision"]})
    return Partial(**dict(row))


async def get_partial(db: Database, name: str) -> Partial:
    async with db.hq_tx() as conn:
        row = await conn.fetchrow(
            """select name, source, description, revision, updated_at
               from hq_template_partials where name = $1""", name)
    if row is None:
        raise NotFound(f"partial {name!r} not found")
    return Partial(**dict(row))


async def list_partials(db: Database, *, cursor: str | None, limit: int) -> Page[Partial]:
    check_limit(limit)
    after = decode_cursor(cursor, str)
    async with db.hq_tx() as conn:
        rows = await conn.fetch(
            """select name, source, description, revision, updated_at
               from hq_template_partials where ($1::text is null or name > $1)
               order by name limit $2""", after, limit + 1)
    return page_of([Partial(**dict(r)) for r in rows], limit, lambda p: p.name)
