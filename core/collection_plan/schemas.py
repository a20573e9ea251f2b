"""The collection plan report, per tenant and rolled up for HQ."""

from __future__ import annotations

from datetime import datetime

import msgspec

from core.collection_plan.requirements import ItemKind, Requirement


class PlanItem(msgspec.Struct, kw_only=True):
    """One field, identifier kind, event type or consent (`channel.purpose`)."""

    kind: ItemKind
    name: str
    scope: str | None = None  # fields: core (HQ) or tenant (extension)
    # Share of live profiles with a value (an identifier, at least one event, a consent).
    fill_rate: float
    profiles_with_value: int
    last_received_at: datetime | None = None
    # Source labels the data actually came from (connector sources, `api`...).
    sources: list[str]
    # Active connectors whose mapping feeds this item.
    connectors: list[str]
    needed_by: list[str] = msgspec.field(default_factory=list)


class CollectionPlan(msgspec.Struct, kw_only=True):
    tenant_id: str
    generated_at: datetime
    profiles: int
    items: list[PlanItem]
    # What the canvas needs that no source feeds yet.
    missing: list[Requirement]


class HqPlanItem(msgspec.Struct, kw_only=True):
    kind: ItemKind
    name: str
    # Tenants where the item has data or a connector feeding it, out of `tenants`.
    tenants_fed: int
    fill_rate: float  # over every live profile of every tenant
    profiles_with_value: int
    last_received_at: datetime | None = None
    sources: list[str]
    needed_by: list[str] = msgspec.field(default_factory=list)
    # Tenants where the canvas needs it and nothing feeds it.
    tenants_missing: int = 0


class HqCollectionPlan(msgspec.Struct, kw_only=True):
    generated_at: datetime
    tenants: int
    profiles: int
    items: list[HqPlanItem]
