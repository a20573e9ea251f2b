"""Connector instances through the API: governance, validation, isolation."""

from __future__ import annotations

import pytest

from tests.conftest import auth

MAPPING = {"identifiers": {"email": "email"}, "traits": {"first_name": "first_name"}}


async def _create(tenant, body: dict):
    return await tenant.request("POST", "/connectors", json={
        "id": "crm", "type": "file_import", "name": "CRM export"} | body)


async def test_a_connector_needs_a_plugin_hq_allows_and_the_tenant_enabled(tenant, hq_key):
    await tenant.client.put("/v1/hq/plugins/file_import", headers=auth(hq_key),
                            json={"allowed": False})
    r = await _create(tenant, {"config": {"mapping": MAPPING}})
    assert r.status_code == 403 and "HQ does not allow" in r.json()["detail"]
    await tenant.client.put("/v1/hq/plugins/file_import", headers=auth(hq_key),
                            json={"allowed": True})
    r = await _create(tenant, {"config": {"mapping": MAPPING}})
    assert r.status_code == 403 and "not enabled" in r.json()["detail"]
    await tenant.enable(hq_key, "file_import")
    r = await _create(tenant, {"config": {"mapping": MAPPING}})
    assert r.status_code == 201, r.text
    assert r.json()["mode"] == "file" and r.json()["source"] == "crm"
    assert (await _create(tenant, {"config": {"mapping": MAPPING}})).status_code == 409


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "nope", "config": {"mapping": MAPPING}}, "type"),
    ({"config": {}}, "config.mapping"),
    ({"config": {"mapping": MAPPING, "delimiter": ";;"}}, "config.delimiter"),
    ({"config": {"mapping": MAPPING, "sheet": 1}}, "config.sheet"),
    ({"config": {"mapping": {"identifiers": {"passport": "p"}}}},
     "config.mapping.identifiers.passport"),
    ({"config": {"mapping": {"identifiers": {}}}}, "config.mapping.identifiers"),
    ({"config": {"mapping": {**MAPPING, "traits": {"shoe_size": "s"}}}},
     "config.mapping.traits.shoe_size"),
    ({"config": {"mapping": {**MAPPING, "event": {"type": "teleported"}}}},
     "config.mapping.event.type"),
    ({"config": {"mapping": {**MAPPING, "event": {}}}}, "config.mapping.event.type"),
    ({"config": {"mapping": {**MAPPING, "timezone": "Mars/Olympus"}}},
     "config.mapping.timezone"),
    ({"config": {"mapping": {**MAPPING, "consents": [
        {"column": "c", "channel": "email", "purpose": "spam"}]}}},
     "config.mapping.consents[0].purpose"),
    ({"config": {"mapping": MAPPING}, "schedule_minutes": 10}, "schedule_minutes"),
    ({"id": "Bad Id", "config": {"mapping": MAPPING}}, "id"),
])
async def test_invalid_connectors_are_refused_with_the_field_named(tenant, hq_key, body, field):
    await tenant.enable(hq_key, "file_import")
    r = await _create(tenant, body)
    assert r.status_code in (400, 422), r.text
    assert r.json()["field"] == field, r.json()


async def test_tenant_b_cannot_see_tenant_a_connectors_or_runs(
        tenant, hq_key, client, make_tenant, make_key):
    await tenant.enable(hq_key, "file_import")
    assert (await _create(tenant, {"config": {"mapping": MAPPING}})).status_code == 201
    r = await tenant.request("POST", "/connectors/crm/uploads", content=b"email\na@b.fr\n",
                             params={"filename": "a.csv"})
    run_id = r.json()["id"]
    b = await make_tenant("cx-b")
    key_b = await make_key(b.id)
    for path in ("/connectors/crm", "/connectors/crm/runs", f"/connectors/crm/runs/{run_id}",
                 f"/connectors/crm/runs/{run_id}/rejects"):
        assert (await client.get(f"/v1/tenants/{tenant.id}{path}",
                                 headers=auth(key_b))).status_code == 404
        assert (await client.get(f"/v1/tenants/{b.id}{path}",
                                 headers=auth(key_b))).status_code == 404
    listed = await client.get(f"/v1/tenants/{b.id}/connectors", headers=auth(key_b))
    assert listed.json()["items"] == []
    r = await client.post(f"/v1/tenants/{b.id}/connectors/crm/uploads", content=b"email\n",
                          headers=auth(key_b))
    assert r.status_code == 404
    r = await client.delete(f"/v1/tenants/{b.id}/connectors/crm", headers=auth(key_b))
    assert r.status_code == 404
    assert (await tenant.request("GET", "/connectors/crm")).status_code == 200


async def test_runs_are_listed_newest_first_with_cursor_pagination(tenant, hq_key):
    await tenant.enable(hq_key, "file_import")
    await _create(tenant, {"config": {"mapping": MAPPING}})
    ids = []
    for i in range(3):
        r = await tenant.request("POST", "/connectors/crm/uploads",
                                 content=f"email\nu{i}@keolis.fr\n".encode())
        ids.append(r.json()["id"])
    page = (await tenant.request("GET", "/connectors/crm/runs", params={"limit": 2})).json()
    rest = (await tenant.request("GET", "/connectors/crm/runs",
                                 params={"cursor": page["next_cursor"]})).json()
    assert [r["id"] for r in page["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None
    r = await tenant.request("DELETE", "/connectors/crm")
    assert r.status_code == 204
    assert (await tenant.request("GET", "/connectors/crm/runs")).status_code == 404
    audit = (await tenant.request("GET", "/audit")).json()["items"]
    assert {"connector.deleted", "connector.created", "connector.file_uploaded"} <= {
        a["action"] for a in audit}
