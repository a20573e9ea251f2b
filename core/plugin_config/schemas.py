"""API shapes of plugin governance and tenant plugin configuration.

Secret fields never appear in an answer: `secrets_set` only says which ones hold a value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from plugins.manager import PluginInfo
from plugins.types import PluginKind


class HqPlugin(msgspec.Struct, kw_only=True):
    """An installed plugin and HQ's governance of it."""

    info: PluginInfo
    allowed: bool = False
    default_config: dict[str, Any] = msgspec.field(default_factory=dict)
    default_secrets_set: list[str] = msgspec.field(default_factory=list)
    locked: list[str] = msgspec.field(default_factory=list)
    updated_at: datetime | None = None
    updated_by: str | None = None


class HqPluginUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Allow or deny tenants the plugin. `default_config` may be partial (tenants complete
    it); secret fields in it are encrypted, and a secret left out keeps its stored value
    (send `null` to clear it). `locked` fields keep HQ's value in every tenant."""

    allowed: bool
    default_config: dict[str, Any] = msgspec.field(default_factory=dict)
    locked: list[str] = msgspec.field(default_factory=list)


class TenantPlugin(msgspec.Struct, kw_only=True):
    """A plugin as one tenant sees it: HQ's permission and the tenant's configuration."""

    name: str
    kind: PluginKind
    version: str
    description: str
    allowed: bool
    configured: bool
    enabled: bool = False
    # The tenant's own values, secrets left out.
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    secrets_set: list[str] = msgspec.field(default_factory=list)
    # HQ defaults ⊕ tenant values, secrets left out: what the plugin runs with.
    effective_config: dict[str, Any] | None = None
    locked: list[str] = msgspec.field(default_factory=list)
    # Why the stored configuration cannot be used (HQ changed its defaults, say).
    problem: str | None = None
    updated_at: datetime | None = None


class TenantPluginPut(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Enable (or keep disabled) a plugin with its configuration, validated against the
    plugin's schema merged over HQ defaults. A secret left out keeps its stored value."""

    enabled: bool = True
    config: dict[str, Any] = msgspec.field(default_factory=dict)
