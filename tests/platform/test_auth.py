from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from tests.conftest import auth


async def test_missing_and_invalid_credentials_are_401(client, make_tenant):
    tenant = await make_tenant("auth")
    for headers in ({}, {"Authorization": "Basic abc"}, auth("rt_nope_abc_def"),
                    auth(f"rt_{tenant.id}_0000_forged"), auth("rh_00_forged"), auth("garbage")):
        r = await client.get(f"/v1/tenants/{tenant.id}/keys", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["type"].endswith("/unauthenticated")


async def test_key_is_shown_once_and_stored_hashed(client, db, make_tenant, make_key):
    tenant = await make_tenant("once")
    admin = await make_key(tenant.id)
    r = await client.post(f"/v1/tenants/{tenant.id}/keys", headers=auth(admin),
                          json={"name": "reader", "scopes": ["customers:read"]})
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith(f"rt_{tenant.id}_")
    listed = (await client.get(f"/v1/tenants/{tenant.id}/keys", headers=auth(admin))).json()
    assert all("key" not in k for k in listed["items"])
    async with db.pool.acquire() as conn, conn.transaction():
        await conn.execute("select set_config('relais.tenant_id', $1, true)", tenant.id)
        stored = await conn.fetchval("select key_hash from api_keys where id = $1",
                                     created["id"])
    assert created["key"].encode() not in bytes(stored) and len(bytes(stored)) == 32


async def test_scopes_are_enforced_with_403(client, make_tenant, make_key):
    tenant = await make_tenant("scopes")
    reader = await make_key(tenant.id, ["audit:read"])
    r = await client.get(f"/v1/tenants/{tenant.id}/audit", headers=auth(reader))
    assert r.status_code == 200
    r = await client.get(f"/v1/tenants/{tenant.id}/keys", headers=auth(reader))
    assert r.status_code == 403 and r.json()["required_scope"] == "admin"
    r = await client.get("/v1/hq/tenants", headers=auth(reader))
    assert r.status_code == 403


async def test_revoked_and_expired_keys_stop_working(client, make_tenant, make_key):
    tenant = await make_tenant("revoke")
    admin = await make_key(tenant.id)
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    r = await client.post(f"/v1/tenants/{tenant.id}/keys", headers=auth(admin),
                          json={"name": "tmp", "scopes": ["admin"], "expires_at": soon})
    short_lived = r.json()
    r = await client.post(f"/v1/tenants/{tenant.id}/keys", headers=auth(admin),
                          json={"name": "victim", "scopes": ["admin"]})
    victim = r.json()
    assert (await client.get(f"/v1/tenants/{tenant.id}", headers=auth(victim["key"]))
            ).status_code == 200
    r = await client.delete(f"/v1/tenants/{tenant.id}/keys/{victim['id']}", headers=auth(admin))
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert (await client.get(f"/v1/tenants/{tenant.id}", headers=auth(victim["key"]))
            ).status_code == 401
    await asyncio.sleep(1.2)
    assert (await client.get(f"/v1/tenants/{tenant.id}", headers=auth(short_lived["key"]))
            ).status_code == 401
    audit = (await client.get(f"/v1/tenants/{tenant.id}/audit", headers=auth(admin))).json()
    assert {"key.created", "key.revoked"} <= {e["action"] for e in audit["items"]}


async def test_suspended_tenant_keys_are_rejected_hq_still_reaches_it(
        client, hq_key, make_tenant, make_key):
    tenant = await make_tenant("susp")
    key = await make_key(tenant.id)
    await client.post(f"/v1/hq/tenants/{tenant.id}/suspend", headers=auth(hq_key))
    r = await client.get(f"/v1/tenants/{tenant.id}", headers=auth(key))
    assert r.status_code == 403 and "suspended" in r.json()["detail"]
    r = await client.get(f"/v1/tenants/{tenant.id}/keys", headers=auth(hq_key))
    assert r.status_code == 200
    await client.post(f"/v1/hq/tenants/{tenant.id}/reactivate", headers=auth(hq_key))
    assert (await client.get(f"/v1/tenants/{tenant.id}", headers=auth(key))).status_code == 200


async def test_hq_keys_manage_hq_keys_and_reach_any_tenant(client, hq_key, make_tenant):
    tenant = await make_tenant("hqreach")
    r = await client.post("/v1/hq/keys", headers=auth(hq_key),
                          json={"name": "ops", "scopes": ["tenants:read"]})
    assert r.status_code == 201
    ops = r.json()
    assert ops["kind"] == "hq" and ops["key"].startswith("rh_")
    assert (await client.get("/v1/hq/tenants", headers=auth(ops["key"]))).status_code == 200
    assert (await client.post("/v1/hq/keys", headers=auth(ops["key"]),
                              json={"name": "x", "scopes": ["admin"]})).status_code == 403
    r = await client.post(f"/v1/tenants/{tenant.id}/keys", headers=auth(hq_key),
                          json={"name": "made by hq", "scopes": ["admin"]})
    assert r.status_code == 201 and r.json()["created_by"].startswith("hq_key:")
    r = await client.post("/v1/hq/keys", headers=auth(hq_key),
                          json={"name": "x", "scopes": ["made:up"]})
    assert r.status_code == 422 and r.json()["field"] == "scopes"


async def test_rate_limit_is_per_key_and_shared_through_redis(app, client, make_tenant,
                                                              make_key, settings, redis):
    tenant = await make_tenant("rate")
    key, other = await make_key(tenant.id), await make_key(tenant.id)
    limited = settings.with_changes(rate_limit_per_minute=5)
    app.state.settings = limited  # the middleware reads the live settings
    if time.time() % 60 > 57:  # keep all requests inside one fixed window
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    try:
        codes = [(await client.get(f"/v1/tenants/{tenant.id}", headers=auth(key))).status_code
                 for _ in range(7)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
        r = await client.get(f"/v1/tenants/{tenant.id}", headers=auth(key))
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1
        assert (await client.get(f"/v1/tenants/{tenant.id}", headers=auth(other))
                ).status_code == 200
        # The count lives in Redis (shared by every API process), not in this process.
        counters = [k async for k in redis.scan_iter(f"{settings.redis_prefix}:rl:*")]
        values = {int(await redis.get(k)) for k in counters}
        assert 8 in values  # the limited key: 8 requests so far this minute
    finally:
        app.state.settings = settings
