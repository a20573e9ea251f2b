from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

TENANT_SLUG = r"^[a-z][a-z0-9-]{1,39}$"
TenantSlug = Annotated[
    str, msgspec.Meta(pattern=TENANT_SLUG, description="lowercase slug, e.g. `lyon`"),
]
CountryCode = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. `FR`")
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
TenantStatus = Literal["active", "suspended"]


class Tenant(msgspec.Struct):
    id: str
    name: str
    country: str
    timezone: str
    default_locale: str
    locales: list[str]
    status: TenantStatus
    created_at: datetime
    updated_at: datetime


class TenantCreate(msgspec.Struct, forbid_unknown_fields=True):
    id: TenantSlug
    name: Name
    country: CountryCode
    timezone: str
    default_locale: str
    locales: list[str] = msgspec.field(default_factory=list)


class TenantUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    timezone: str | msgspec.UnsetType = msgspec.UNSET
    default_locale: str | msgspec.UnsetType = msgspec.UNSET
    locales: list[str] | msgspec.UnsetType = msgspec.UNSET
