from __future__ import annotations

from dataclasses import dataclass

import pytest

from tenants.context import SYSTEM, TenantContext
from tenants.service import context_for
from tests.segments.factories import person, track, trips


@dataclass
class Town:
    ctx: TenantContext
    key: str
    ids: dict


async def make_town(db, make_tenant, make_key, prefix: str = "life") -> Town:
    """One customer per stage of the default canvas (fred turns fragile on the 2nd run)."""
    tenant = await make_tenant(prefix)
    ctx = context_for(tenant, SYSTEM)
    ids = await track(db, ctx, [
        *trips("nina", 2, days_ago=5),
        *trips("andy", 1, days_ago=200), *trips("andy", 3, days_ago=10),
        *trips("lola", 1, days_ago=300), *trips("lola", 25, days_ago=20),
        *trips("ivan", 1, days_ago=150), *trips("ivan", 1, days_ago=100),
        *trips("dora", 1, days_ago=250), *trips("dora", 1, days_ago=200),
        *trips("lars", 1, days_ago=500), *trips("lars", 1, days_ago=400),
        *trips("fred", 1, days_ago=200), *trips("fred", 30, days_ago=95),
        *trips("fred", 1, days_ago=3),
    ])
    ids["pia"] = await person(db, ctx, "pia", country="FR")
    return Town(ctx, await make_key(tenant.id), ids)


@pytest.fixture
async def town(db, make_tenant, make_key) -> Town:
    return await make_town(db, make_tenant, make_key)
