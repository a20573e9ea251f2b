"""A small demo group: HQ plus three networks on three continents, each with a few hundred
customers, their trips and purchases, consents, a segment, lifecycle stages, a holdout group
and a draft newsletter."""

from __future__ import annotations

import msgspec

from core.auth import service as keys
from core.auth.schemas import ApiKeyCreate
from core.db import Database
from core.demo_data import load_customers, load_segment_and_stages
from tenants import service as tenants
from tenants.context import SYSTEM, HqContext
from tenants.schemas import TenantCreate

DEMO_TENANTS = [
    TenantCreate(id="lyon", name="Lyon transit network", country="FR",
                 timezone="Europe/Paris", default_locale="fr-FR", locales=["fr-FR", "en-GB"]),
    TenantCreate(id="casablanca", name="Casablanca tramway", country="MA",
                 timezone="Africa/Casablanca", default_locale="fr-MA",
                 locales=["fr-MA", "ar-MA"]),
    TenantCreate(id="austin", name="Austin metro", country="US",
                 timezone="America/Chicago", default_locale="en-US",
                 locales=["en-US", "es-US"]),
]


class DemoKey(msgspec.Struct):
    tenant_id: str
    key: str


async def load_demo(db: Database) -> list[DemoKey]:
    """Create the demo tenants that are missing; returns an admin key for each one created
    (keys are shown once, so a second run creates nothing and prints nothing)."""
    hq = HqContext(actor=SYSTEM)
    existing = set(await tenants.list_tenant_ids(db, status=None))
    created: list[DemoKey] = []
    for data in DEMO_TENANTS:
        if data.id in existing:
            continue
        tenant = await tenants.create_tenant(db, hq, data)
        ctx = tenants.context_for(tenant, SYSTEM)
        key = await keys.create_tenant_key(
            db, ctx, ApiKeyCreate(name="demo admin", scopes=["admin"]))
        await load_customers(db, ctx)
        await load_segment_and_stages(db, ctx)
        created.append(DemoKey(tenant_id=tenant.id, key=key.key))
    return created
