"""The scopes API keys and OAuth tokens carry.

`admin` grants everything within the key's reach; `x:write` implies `x:read`.
HQ keys reach `/v1/hq/...` and, for support and roll-out work, every tenant's routes.
"""

from __future__ import annotations

ADMIN = "admin"

RESOURCES = (
    "tenants", "keys", "audit", "model", "customers", "events", "consents", "segments",
    "lifecycle", "templates", "messages", "campaigns", "journeys", "plugins", "connectors",
    "kpis", "oauth",
)

ALL_SCOPES: frozenset[str] = frozenset(
    {ADMIN} | {f"{r}:{mode}" for r in RESOURCES for mode in ("read", "write")}
)


def unknown_scopes(scopes: list[str]) -> list[str]:
    return [s for s in scopes if s not in ALL_SCOPES]


def grants(held: frozenset[str], required: str) -> bool:
    if ADMIN in held or required in held:
        return True
    resource, _, mode = required.partition(":")
    return mode == "read" and f"{resource}:write" in held
