"""What a definition may refer to: fields, event types and their properties, stages.

Read from the data dictionary and event catalog of `core.model` (the tenant's core ⊕
tenant fields and event types, or HQ's core alone for global definitions), plus the facts
the platform itself records (`stage_changed`, `segment_entered`, `segment_exited`).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.db import Connection, Database
from core.model.schemas import PropertySpec
from core.model.service import get_hq_model, load_data_config
from tenants.context import TenantContext

# Columns of `customers` a definition may compare that the dictionary does not list.
_PSEUDO_COLUMNS = {"stage": "string", "created_at": "datetime", "updated_at": "datetime"}

# Events written by the platform itself (see core.lifecycle and core.segments.service).
SYSTEM_EVENTS: dict[str, dict[str, PropertySpec]] = {
    "stage_changed": {"from": PropertySpec(type="string"), "to": PropertySpec(type="string"),
                      "version": PropertySpec(type="number")},
    "segment_entered": {"segment_id": PropertySpec(type="string")},
    "segment_exited": {"segment_id": PropertySpec(type="string")},
}


@dataclass(frozen=True)
class FieldInfo:
    type: str  # string, number, boolean, date, datetime, enum
    column: bool  # a real column of `customers`; else a key of `customers.attributes`
    enum_values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Vocabulary:
    fields: dict[str, FieldInfo]
    events: dict[str, dict[str, PropertySpec]]
    # Known lifecycle stage names; None accepts any (e.g. while a canvas is being written).
    stages: frozenset[str] | None = None
    scope: str = "tenant"

    def with_stages(self, stages: frozenset[str] | None) -> Vocabulary:
        return Vocabulary(self.fields, self.events, stages, self.scope)


def _fields(defs) -> dict[str, FieldInfo]:
    fields = {name: FieldInfo(type_, True) for name, type_ in _PSEUDO_COLUMNS.items()}
    for f in defs:
        fields.setdefault(f.name, FieldInfo(
            f.type, bool(f.builtin), tuple(f.enum_values) if f.enum_values else None))
    return fields


async def tenant_vocabulary(conn: Connection, ctx: TenantContext) -> Vocabulary:
    """Inside `db.tenant_tx(ctx)`: core ⊕ tenant dictionary and catalog."""
    config = await load_data_config(conn, ctx)
    events = {**config.event_types, **SYSTEM_EVENTS}
    return Vocabulary(fields=_fields(config.fields.values()), events=events)


async def hq_vocabulary(db: Database) -> Vocabulary:
    """Global definitions may only use what every tenant has: the HQ core."""
    model = await get_hq_model(db)
    events = {e.name: e.properties for e in model.event_types} | SYSTEM_EVENTS
    return Vocabulary(fields=_fields(model.fields), events=events, scope="hq")
