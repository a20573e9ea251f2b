from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Scopes = Annotated[list[str], msgspec.Meta(min_length=1, max_length=64)]


class Principal(msgspec.Struct, frozen=True):
    """An authenticated caller. `tenant_id` is None for HQ keys (they reach every tenant)."""

    kind: Literal["hq_key", "tenant_key", "oauth"]
    id: str
    scopes: frozenset[str]
    tenant_id: str | None = None
    client_id: str | None = None
    expires_at: datetime | None = None

    @property
    def is_hq(self) -> bool:
        return self.tenant_id is None


class ApiKey(msgspec.Struct):
    id: str
    name: str
    scopes: list[str]
    kind: Literal["hq", "tenant"]
    tenant_id: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class CreatedApiKey(ApiKey):
    key: str = ""  # the secret; returned once, never stored


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    scopes: Scopes
    expires_at: datetime | None = None
