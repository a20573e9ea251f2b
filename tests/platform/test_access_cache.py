"""The per-process credential cache never outlives its TTL or a key's expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from core.auth import service as keys
from core.auth.cache import AccessCache
from core.auth.schemas import ApiKeyCreate
from core.errors import Unauthenticated
from tenants.context import SYSTEM
from tenants.service import context_for


async def test_revocation_elsewhere_is_seen_after_the_ttl(db, make_tenant):
    tenant = await make_tenant("cache")
    ctx = context_for(tenant, SYSTEM)
    created = await keys.create_tenant_key(db, ctx, ApiKeyCreate(name="c", scopes=["admin"]))
    cache = AccessCache(ttl=1)
    load = partial(keys.authenticate_key, db)
    assert (await cache.principal(created.key, load)).id == created.id
    await keys.revoke_tenant_key(db, ctx, created.id)  # "another process": no eviction here
    assert (await cache.principal(created.key, load)).id == created.id  # within the TTL
    await asyncio.sleep(1.1)
    with pytest.raises(Unauthenticated):
        await cache.principal(created.key, load)


async def test_cached_key_still_expires_on_time_and_eviction_is_immediate(db, make_tenant):
    tenant = await make_tenant("cache")
    ctx = context_for(tenant, SYSTEM)
    expires = datetime.now(UTC) + timedelta(seconds=1)
    short = await keys.create_tenant_key(
        db, ctx, ApiKeyCreate(name="s", scopes=["admin"], expires_at=expires))
    other = await keys.create_tenant_key(db, ctx, ApiKeyCreate(name="o", scopes=["admin"]))
    cache = AccessCache(ttl=60)
    load = partial(keys.authenticate_key, db)
    await cache.principal(short.key, load)
    await cache.principal(other.key, load)
    await keys.revoke_tenant_key(db, ctx, other.id)
    cache.forget_key(other.id)
    with pytest.raises(Unauthenticated):
        await cache.principal(other.key, load)
    await asyncio.sleep(1.2)
    with pytest.raises(Unauthenticated):
        await cache.principal(short.key, load)
