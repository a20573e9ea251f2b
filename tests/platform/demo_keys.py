"""The demo group, loaded once per test session, and the admin key of each demo tenant
(keys are shown once: whichever test asks first loads the demo and keeps them)."""

from __future__ import annotations

from core.db import Database
from core.demo import load_demo

_KEYS: dict[str, str] = {}


async def demo_keys(db: Database) -> dict[str, str]:
    if not _KEYS:
        _KEYS.update({k.tenant_id: k.key for k in await load_demo(db)})
    return _KEYS
