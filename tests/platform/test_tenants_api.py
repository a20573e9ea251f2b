from __future__ import annotations

from tests.conftest import auth


async def test_hq_creates_lists_updates_and_suspends_tenants(client, hq_key):
    body = {"id": "lyon-t1", "name": "Lyon", "country": "FR", "timezone": "Europe/Paris",
            "default_locale": "fr-fr", "locales": ["en-gb"]}
    r = await client.post("/v1/hq/tenants", json=body, headers=auth(hq_key))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["default_locale"] == "fr-FR" and created["locales"] == ["fr-FR", "en-GB"]
    assert created["status"] == "active"

    r = await client.post("/v1/hq/tenants", json=body, headers=auth(hq_key))
    assert r.status_code == 409 and r.json()["field"] == "id"

    r = await client.patch("/v1/hq/tenants/lyon-t1", json={"name": "TCL"}, headers=auth(hq_key))
    assert r.status_code == 200 and r.json()["name"] == "TCL"

    r = await client.post("/v1/hq/tenants/lyon-t1/suspend", headers=auth(hq_key))
    assert r.json()["status"] == "suspended"
    r = await client.get("/v1/hq/tenants/lyon-t1", headers=auth(hq_key))
    assert r.json()["status"] == "suspended"
    r = await client.post("/v1/hq/tenants/lyon-t1/reactivate", headers=auth(hq_key))
    assert r.json()["status"] == "active"

    r = await client.get("/v1/hq/audit", params={"tenant_id": "lyon-t1"}, headers=auth(hq_key))
    actions = [e["action"] for e in r.json()["items"]]
    assert actions == ["tenant.reactivated", "tenant.suspended", "tenant.updated",
                       "tenant.created"]


async def test_120_tenants_each_key_sees_only_its_own(client, hq_key, make_key):
    ids = [f"net-{i:03d}" for i in range(120)]
    for tenant_id in ids:
        r = await client.post("/v1/hq/tenants", headers=auth(hq_key), json={
            "id": tenant_id, "name": tenant_id, "country": "FR",
            "timezone": "Europe/Paris", "default_locale": "fr-FR"})
        assert r.status_code == 201
    listed, cursor = [], None
    while True:
        r = await client.get("/v1/hq/tenants", headers=auth(hq_key),
                             params={"limit": 50} | ({"cursor": cursor} if cursor else {}))
        page = r.json()
        listed += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(ids) <= set(listed) and len(listed) == len(set(listed))

    keys = {tenant_id: await make_key(tenant_id) for tenant_id in ids}
    for i, tenant_id in enumerate(ids):
        own = await client.get(f"/v1/tenants/{tenant_id}", headers=auth(keys[tenant_id]))
        assert own.status_code == 200 and own.json()["id"] == tenant_id
        other = ids[(i + 1) % len(ids)]
        r = await client.get(f"/v1/tenants/{other}/keys", headers=auth(keys[tenant_id]))
        assert r.status_code == 404


async def test_tenant_validation_names_the_field(client, hq_key):
    base = {"id": "ok-tenant", "name": "x", "country": "FR", "timezone": "Europe/Paris",
            "default_locale": "fr-FR"}
    cases = [
        ({"id": "Bad Slug"}, "id"),
        ({"country": "XX"}, "country"),
        ({"country": "france"}, "country"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"default_locale": "not a locale"}, "default_locale"),
        ({"locales": ["fr-FR", "??"]}, "locales[1]"),
        ({"unexpected": 1}, "unexpected"),
        ({"id": "hq"}, "id"),
    ]
    for change, field in cases:
        r = await client.post("/v1/hq/tenants", json=base | change, headers=auth(hq_key))
        assert r.status_code in (400, 422), (change, r.text)
        problem = r.json()
        assert r.headers["content-type"] == "application/problem+json"
        assert problem["field"] == field, (change, problem)
    r = await client.patch("/v1/hq/tenants/nope", json={"name": "x"}, headers=auth(hq_key))
    assert r.status_code == 404
