"""The collection plan, computed from the data itself (set-based, one scan per table) and
from the connectors' mappings.

- fields: fill rate from profile values; sources and last received time from the
  survivorship metadata (`customers.field_meta`: field → [set_at, source, first_seen]);
- identifiers, events, consents: from their tables, grouped by kind/type and source;
- connectors: what each active connector's mapping declares it feeds.

The HQ roll-up runs the same computation inside each tenant's scope (`for_each_tenant`) and
returns aggregates only.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import msgspec

from core.collection_plan.requirements import Requirement, canvas_requirements
from core.collection_plan.schemas import CollectionPlan, HqCollectionPlan, HqPlanItem, PlanItem
from core.connectors.mapping import Mapping
from core.db import Connection, Database
from core.identity.normalise import IDENTIFIER_KINDS
from core.identity.survivorship import PROFILE_COLUMNS
from tenants.context import TenantContext
from tenants.service import list_tenant_ids

_LIVE = "merged_into is null and erased_at is null"
Key = tuple[str, str]


class _Acc(msgspec.Struct):
    count: int = 0
    last: datetime | None = None
    sources: set[str] = msgspec.field(default_factory=set)
    connectors: set[str] = msgspec.field(default_factory=set)

    def seen(self, source: str | None, last: datetime | None) -> None:
        if source:
            self.sources.add(source)
        if last is not None and (self.last is None or last > self.last):
            self.last = last


async def _fields(conn: Connection, acc: dict[Key, _Acc]) -> int:
    counts = ", ".join(f"count({c}) as {c}" for c in PROFILE_COLUMNS)
    row = await conn.fetchrow(f"select count(*) as profiles, {counts} from customers "
                              f"where {_LIVE}")
    for column in PROFILE_COLUMNS:
        acc[("field", column)].count = row[column]
    for r in await conn.fetch(
            f"""select a.key, count(*) as n from customers c, jsonb_each(c.attributes) a
                where {_LIVE} and a.value <> 'null'::jsonb group by a.key"""):
        acc[("field", r["key"])].count = r["n"]
    for r in await conn.fetch(
            f"""select m.key, m.value->>1 as source, max((m.value->>0)::timestamptz) as last
                from customers c, jsonb_each(c.field_meta) m
                where {_LIVE} and jsonb_typeof(m.value) = 'array'
                group by 1, 2"""):
        acc[("field", r["key"])].seen(r["source"], r["last"])
    return row["profiles"]


async def _identifiers(conn: Connection, acc: dict[Key, _Acc]) -> None:
    for r in await conn.fetch(
            """select kind, count(distinct customer_id) as n from identifiers group by kind"""):
        acc[("identifier", r["kind"])].count = r["n"]
    for r in await conn.fetch(
            """select kind, source, max(last_seen) as last from identifiers group by 1, 2"""):
        acc[("identifier", r["kind"])].seen(r["source"], r["last"])


async def _events(conn: Connection, acc: dict[Key, _Acc]) -> None:
    rows = await conn.fetch(
        """select type, source, count(distinct customer_id) as n, max(received_at) as last
           from events group by grouping sets ((type, source), (type))""")
    for r in rows:
        item = acc[("event", r["type"])]
        if r["source"] is None:
            item.count = r["n"]
        else:
            item.seen(r["source"], r["last"])


async def _consents(conn: Connection, acc: dict[Key, _Acc]) -> None:
    rows = await conn.fetch(
        """select channel || '.' || purpose as name, source, count(*) as n,
                  max(updated_at) as last
           from consents
           group by grouping sets ((channel || '.' || purpose, source),
                                   (channel || '.' || purpose))""")
    for r in rows:
        item = acc[("consent", r["name"])]
        if r["source"] is None:
            item.count = r["n"]
        else:
            item.seen(r["source"], r["last"])


async def _connectors(conn: Connection, acc: dict[Key, _Acc]) -> None:
    rows = await conn.fetch("select id, config->'mapping' as mapping from connectors "
                            "where status = 'active' and config ? 'mapping'")
    for r in rows:
        try:
            mapping = msgspec.convert(r["mapping"], Mapping)
        except msgspec.ValidationError:
            continue  # written by a plugin version we no longer understand
        fed: list[Key] = [("identifier", k.partition(".")[0]) for k in mapping.identifiers]
        fed += [("field", name) for name in mapping.traits]
        fed += [("consent", f"{c.channel}.{c.purpose}") for c in mapping.consents]
        if mapping.event is not None and mapping.event.type:
            fed.append(("event", mapping.event.type))
        for key in fed:
            acc[key].connectors.add(r["id"])


async def tenant_plan(conn: Connection, ctx: TenantContext) -> CollectionPlan:
    """Runs in the caller's tenant transaction."""
    acc: dict[Key, _Acc] = defaultdict(_Acc)
    profiles = await _fields(conn, acc)
    await _identifiers(conn, acc)
    await _events(conn, acc)
    await _consents(conn, acc)
    await _connectors(conn, acc)
    fields = await conn.fetch("select name, 'core' as scope from hq_core_fields union all "
                              "select name, 'tenant' from tenant_fields")
    event_types = await conn.fetch("select name from hq_event_types union "
                                   "select name from tenant_event_types")
    requirements = canvas_requirements()
    needs: dict[Key, list[str]] = defaultdict(list)
    for req in requirements:
        needs[(req.kind, req.name)].append(req.needed_by)
    known: dict[Key, str | None] = {("field", r["name"]): r["scope"] for r in fields}
    known |= {("identifier", k): None for k in IDENTIFIER_KINDS}
    known |= {("event", r["name"]): None for r in event_types}
    known |= {k: None for k in acc if k[0] == "consent"}
    known |= {k: None for k in needs if k not in known}
    items = []
    for key in sorted(known):
        a = acc.get(key) or _Acc()
        items.append(PlanItem(
            kind=key[0], name=key[1], scope=known[key],  # type: ignore[arg-type]
            fill_rate=round(a.count / profiles, 4) if profiles else 0.0,
            profiles_with_value=a.count, last_received_at=a.last,
            sources=sorted(a.sources), connectors=sorted(a.connectors),
            needed_by=needs.get(key, [])))
    fed = {(i.kind, i.name) for i in items if i.profiles_with_value or i.connectors}
    missing = [r for r in requirements if (r.kind, r.name) not in fed]
    return CollectionPlan(tenant_id=ctx.tenant_id, generated_at=datetime.now(UTC),
                          profiles=profiles, items=items, missing=missing)


async def get_tenant_plan(db: Database, ctx: TenantContext) -> CollectionPlan:
    async with db.tenant_tx(ctx) as conn:
        return await tenant_plan(conn, ctx)


def _context(tenant_id: str) -> TenantContext:
    # Only the id matters to `tenant_plan`: the scope is set by `for_each_tenant`.
    return TenantContext(tenant_id=tenant_id, timezone="UTC", country="FR",
                         default_locale="fr", locales=("fr",))


async def get_hq_plan(db: Database) -> HqCollectionPlan:
    tenant_ids = await list_tenant_ids(db, status="active")

    async def plan_of(conn: Connection, tenant_id: str) -> CollectionPlan:
        return await tenant_plan(conn, _context(tenant_id))

    plans = await db.for_each_tenant(tenant_ids, plan_of)
    return roll_up(list(plans.values()))


def roll_up(plans: list[CollectionPlan]) -> HqCollectionPlan:
    profiles = sum(p.profiles for p in plans)
    totals: dict[Key, dict[str, Any]] = {}
    for plan in plans:
        missing = {(r.kind, r.name) for r in plan.missing}
        for item in plan.items:
            t = totals.setdefault((item.kind, item.name), {
                "fed": 0, "count": 0, "last": None, "sources": set(), "needed": set(),
                "missing": 0})
            t["fed"] += bool(item.profiles_with_value or item.connectors)
            t["count"] += item.profiles_with_value
            t["sources"] |= set(item.sources)
            t["needed"] |= set(item.needed_by)
            t["missing"] += (item.kind, item.name) in missing
            if item.last_received_at and (t["last"] is None or item.last_received_at > t["last"]):
                t["last"] = item.last_received_at
    items = [HqPlanItem(kind=k[0], name=k[1], tenants_fed=t["fed"],  # type: ignore[arg-type]
                        fill_rate=round(t["count"] / profiles, 4) if profiles else 0.0,
                        profiles_with_value=t["count"], last_received_at=t["last"],
                        sources=sorted(t["sources"]), needed_by=sorted(t["needed"]),
                        tenants_missing=t["missing"])
             for k, t in sorted(totals.items())]
    return HqCollectionPlan(generated_at=datetime.now(UTC), tenants=len(plans),
                            profiles=profiles, items=items)


__all__ = ["Requirement", "get_hq_plan", "get_tenant_plan", "roll_up", "tenant_plan"]
