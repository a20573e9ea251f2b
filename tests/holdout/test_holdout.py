"""Universal holdout: deterministic buckets (SQL and Python agree), stable across runs,
new customers fall in automatically, reset archives the old group with its dates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.holdout import service
from core.holdout.schemas import HoldoutCreate
from tenants.context import SYSTEM
from tenants.service import context_for
from tests.campaigns.factories import add_customers, make_shop
from tests.conftest import auth


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(st.text(min_size=0, max_size=40), st.uuids()),
                      min_size=1, max_size=50))
async def test_sql_bucket_is_the_python_bucket(db, pairs):
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            """select relais_bucket(s, c::text) as b
               from unnest($1::text[], $2::uuid[]) with ordinality as u(s, c, n) order by n""",
            [s.replace("\x00", "") for s, _ in pairs], [c for _, c in pairs])
    for (salt, cid), row in zip(pairs, rows, strict=True):
        b = service.bucket(salt.replace("\x00", ""), str(cid))
        assert row["b"] == b and 0 <= b < 10_000


def test_buckets_are_uniform_enough():
    counts = [0] * 10
    for i in range(20_000):
        counts[service.bucket("salt", str(uuid.UUID(int=i))) // 1000] += 1
    assert min(counts) > 1800 and max(counts) < 2200


async def test_groups_membership_reset_and_api(client, db, make_tenant, make_key):
    shop = await make_shop(db, make_tenant, "hold")
    ids = await add_customers(shop, 300)
    key = await make_key(shop.ctx.tenant_id)
    base = f"/v1/tenants/{shop.ctx.tenant_id}/holdout"
    r = await client.get(base, headers=auth(key))
    assert r.json() == {"active": None, "in_effect": False}
    r = await client.get(f"{base}/customers/{ids[0]}", headers=auth(key))
    assert r.status_code == 404

    r = await client.post(f"{base}/groups", headers=auth(key), json={"percent": 60})
    assert r.status_code == 400  # at most 50%
    r = await client.post(f"{base}/groups", headers=auth(key), json={
        "percent": 10, "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2029-01-01T00:00:00Z"})
    assert r.status_code == 422 and r.json()["field"] == "ends_at"
    r = await client.post(f"{base}/groups", headers=auth(key), json={"percent": 10})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["buckets"] == 1000 and first["status"] == "active"
    months = datetime.fromisoformat(first["ends_at"]) - datetime.fromisoformat(first["starts_at"])
    assert timedelta(days=180) <= months <= timedelta(days=185)  # 6 months by default

    async with db.tenant_tx(shop.ctx) as conn:
        salt = await conn.fetchval("select salt from holdout_groups where id = $1",
                                   uuid.UUID(first["id"]))
    held = sorted(str(c) for c in ids if service.bucket(salt, str(c)) < 1000)
    # same customer, same bucket, every time
    for cid in ids[:20]:
        for _ in range(2):
            r = await client.get(f"{base}/customers/{cid}", headers=auth(key))
            m = r.json()
            assert m["bucket"] == service.bucket(salt, str(cid))
            assert m["held_out"] == (m["bucket"] < 1000) and m["in_effect"] == m["held_out"]
    # the member list is exactly the held-out customers, page by page
    listed, cursor = [], None
    while True:
        r = await client.get(f"{base}/groups/{first['id']}/members?limit=7"
                             + (f"&cursor={cursor}" if cursor else ""), headers=auth(key))
        page = r.json()
        listed += [m["customer_id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert listed == held
    # new customers fall into their bucket automatically
    newcomers = await add_customers(shop, 100)
    members = await service.members(db, shop.ctx, first["id"], cursor=None, limit=500)
    assert {m.customer_id for m in members.items} == set(held) | {
        str(c) for c in newcomers if service.bucket(salt, str(c)) < 1000}

    # reset: a new salt; the old group is archived with its dates, not mutated otherwise
    r = await client.post(f"{base}/reset", headers=auth(key), json={})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["id"] != first["id"] and second["percent"] == 10
    r = await client.get(f"{base}/groups/{first['id']}", headers=auth(key))
    old = r.json()
    assert old["status"] == "archived" and old["archived_at"] is not None
    assert old["starts_at"] == first["starts_at"] and old["buckets"] == 1000
    assert datetime.fromisoformat(old["ends_at"]) <= datetime.now(UTC)
    r = await client.get(f"{base}/groups", headers=auth(key))
    assert [g["id"] for g in r.json()["items"]] == [second["id"], first["id"]]
    changed = 0
    for cid in ids[:50]:
        now = (await client.get(f"{base}/customers/{cid}", headers=auth(key))).json()
        before = (await client.get(f"{base}/customers/{cid}?group={first['id']}",
                                   headers=auth(key))).json()
        assert before["bucket"] == service.bucket(salt, str(cid)) and not before["in_effect"]
        changed += now["bucket"] != before["bucket"]
    assert changed > 40
    r = await client.get(f"{base}/groups/{uuid.uuid4()}", headers=auth(key))
    assert r.status_code == 404
    r = await client.get(f"{base}/customers/not-a-uuid", headers=auth(key))
    assert r.status_code == 422 and r.json()["field"] == "customer_id"
    r = await client.get(f"/v1/tenants/{shop.ctx.tenant_id}/audit?limit=5", headers=auth(key))
    assert {"holdout.created", "holdout.reset"} <= {e["action"] for e in r.json()["items"]}


async def test_reset_without_group_needs_a_percent(db, make_tenant):
    tenant = await make_tenant("hold")
    ctx = context_for(tenant, SYSTEM)
    from core.errors import InvalidInput
    from core.holdout.schemas import HoldoutReset
    try:
        await service.reset(db, ctx, HoldoutReset())
    except InvalidInput as err:
        assert err.field == "percent"
    else:
        raise AssertionError("expected InvalidInput")
    group = await service.reset(db, ctx, HoldoutReset(percent=5, months=1))
    assert group.buckets == 500
    again = await service.create_group(db, ctx, HoldoutCreate(percent=0))
    assert again.buckets == 0 and (await service.overview(db, ctx)).active.id == again.id
