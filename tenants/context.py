"""The tenant scope every tenant-owned operation must be given explicitly."""

from __future__ import annotations

import msgspec


class Actor(msgspec.Struct, frozen=True):
    """Who is acting: recorded in the audit log. `kind` is `hq_key`, `tenant_key`,
    `oauth`, `system` (jobs, CLI)."""

    kind: str
    id: str
    client_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"


SYSTEM = Actor(kind="system", id="relais")


class TenantContext(msgspec.Struct, frozen=True):
    """Required first argument of every tenant-scoped service function.

    Built only by `tenants.service.tenant_context` (API dependency, jobs, CLI) after the
    tenant was found; holding one means "this caller may act inside this tenant".
    """

    tenant_id: str
    timezone: str
    country: str
    default_locale: str
    locales: tuple[str, ...]
    actor: Actor = SYSTEM
    request_id: str | None = None


class HqContext(msgspec.Struct, frozen=True):
    """Scope of an HQ operation (HQ-wide tables, tenant registry)."""

    actor: Actor = SYSTEM
    request_id: str | None = None
