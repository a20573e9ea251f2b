"""The data dictionary (core + tenant fields), the event catalog and tenant data settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

FieldName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$",
                                        description="snake_case, e.g. `pmr_status`")]
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
FieldType = Literal["string", "number", "boolean", "date", "enum"]
PropertyType = Literal["string", "number", "boolean", "date", "datetime", "enum", "object",
                       "array"]
Scope = Literal["core", "tenant"]
Policy = Literal["reject", "quarantine"]


class FieldDef(msgspec.Struct):
    name: str
    type: FieldType
    required: bool
    enum_values: list[str] | None
    description: str
    scope: Scope
    builtin: bool = False


class FieldCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: FieldName
    type: FieldType
    required: bool = False
    enum_values: list[str] | None = None
    description: Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)] = ""


class PropertySpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    type: PropertyType
    required: bool = False
    values: list[str] | None = None
    min: float | None = None
    max: float | None = None


class EventType(msgspec.Struct):
    name: str
    description: str
    properties: dict[str, PropertySpec]
    scope: Scope


class EventTypeCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: FieldName
    description: Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)] = ""
    properties: dict[str, PropertySpec] = msgspec.field(default_factory=dict)


class HqModel(msgspec.Struct):
    fields: list[FieldDef]
    event_types: list[EventType]


class HqModelUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Replaces the sections given. `fields` lists every core field: built-in ones may
    change `required` and `description` only (their type is a column), and cannot be
    removed; the others are HQ extension fields every tenant gets."""

    fields: list[FieldCreate] | msgspec.UnsetType = msgspec.UNSET
    event_types: list[EventTypeCreate] | msgspec.UnsetType = msgspec.UNSET


class DataSettings(msgspec.Struct):
    unknown_events: Policy
    invalid_properties: Policy
    strict_traits: bool
    future_tolerance_seconds: int
    updated_at: datetime | None = None


class DataSettingsUpdate(msgspec.Struct, forbid_unknown_fields=True):
    unknown_events: Policy | msgspec.UnsetType = msgspec.UNSET
    invalid_properties: Policy | msgspec.UnsetType = msgspec.UNSET
    strict_traits: bool | msgspec.UnsetType = msgspec.UNSET
    future_tolerance_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)] | \
        msgspec.UnsetType = msgspec.UNSET


class TenantModel(msgspec.Struct):
    """What the tenant actually runs: core ⊕ tenant fields and event types, its policies."""

    fields: list[FieldDef]
    event_types: list[EventType]
    settings: DataSettings
