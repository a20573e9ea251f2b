"""Client credentials (bound to one tenant) and what its tokens may reach."""

from __future__ import annotations

from tests.conftest import auth
from tests.oauth.conftest import basic, client_credentials, register


async def _machine(http, hq_key, tenant_id, **fields):
    return await register(http, hq_key, grant_types=["client_credentials"], redirect_uris=[],
                          tenant=tenant_id, **fields)


async def test_client_credentials_token_reaches_its_tenant_only(http, hq_key, make_tenant):
    home, other = await make_tenant("cc"), await make_tenant("cc")
    client = await _machine(http, hq_key, home.id)
    r = await client_credentials(http, client)
    assert r.status_code == 200, r.text
    token = r.json()
    assert "refresh_token" not in token and token["expires_in"] == 3600
    headers = auth(token["access_token"])

    assert (await http.get(f"/v1/tenants/{home.id}", headers=headers)).status_code == 200
    # Another tenant's routes: the same 404 as for a missing tenant.
    r = await http.get(f"/v1/tenants/{other.id}", headers=headers)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await http.get("/v1/tenants/no-such-tenant", headers=headers)
    assert r.status_code == 404
    # HQ routes need an HQ key.
    assert (await http.get("/v1/hq/tenants", headers=headers)).status_code == 403
    # Scopes apply as for keys: customers:read does not grant the audit log.
    assert (await http.get(f"/v1/tenants/{home.id}/audit", headers=headers)).status_code == 403


async def test_client_credentials_checks(http, hq_key, make_tenant):
    home, other = await make_tenant("cc"), await make_tenant("cc")
    client = await _machine(http, hq_key, home.id)
    r = await client_credentials(http, client, tenant=other.id)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert (await client_credentials(http, client, tenant=home.id)).status_code == 200
    for scope in ("customers:write", "admin", "oauth:write"):
        r = await client_credentials(http, client, scope=scope)
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope", scope
    r = await client_credentials(http, client, scope="customers:read")
    assert r.json()["scope"] == "customers:read"

    wrong = client | {"client_secret": "pcs_wrong"}
    r = await client_credentials(http, wrong)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # Secret in the form body works too (client_secret_post).
    r = await http.post("/oauth/token", data={"grant_type": "client_credentials",
                                              "client_id": client["client_id"],
                                              "client_secret": client["client_secret"]})
    assert r.status_code == 200, r.text

    # A client registered without client_credentials cannot use it.
    interactive = await register(http, hq_key)
    r = await client_credentials(http, interactive)
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    r = await http.post("/oauth/token", data={"grant_type": "password"}, auth=basic(client))
    assert r.json()["error"] == "unsupported_grant_type"


async def test_secret_rotation_and_disabling(http, hq_key, make_tenant):
    home = await make_tenant("cc")
    client = await _machine(http, hq_key, home.id)
    token = (await client_credentials(http, client)).json()["access_token"]
    r = await http.post(f"/v1/hq/oauth/clients/{client['client_id']}/secret",
                        headers=auth(hq_key))
    assert r.status_code == 200
    rotated = r.json()
    assert rotated["client_secret"] != client["client_secret"]
    assert rotated["secret_rotated_at"] is not None
    assert (await client_credentials(http, client)).status_code == 401
    assert (await client_credentials(http, rotated)).status_code == 200
    # Tokens issued before the rotation live on until they expire...
    assert (await http.get(f"/v1/tenants/{home.id}", headers=auth(token))).status_code == 200
    # ...but disabling the client kills every token at once.
    r = await http.delete(f"/v1/hq/oauth/clients/{client['client_id']}", headers=auth(hq_key))
    assert r.status_code == 200 and r.json()["disabled_at"] is not None
    r = await http.get(f"/v1/tenants/{home.id}", headers=auth(token))
    assert r.status_code == 401 and "revoked" in r.headers["www-authenticate"]
    assert (await client_credentials(http, rotated)).status_code == 401


async def test_suspended_tenant(http, hq_key, make_tenant):
    home = await make_tenant("cc")
    client = await _machine(http, hq_key, home.id)
    token = (await client_credentials(http, client)).json()["access_token"]
    r = await http.post(f"/v1/hq/tenants/{home.id}/suspend", headers=auth(hq_key))
    assert r.status_code == 200
    assert (await http.get(f"/v1/tenants/{home.id}", headers=auth(token))).status_code == 403
    r = await client_credentials(http, client)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    await http.post(f"/v1/hq/tenants/{home.id}/reactivate", headers=auth(hq_key))
    assert (await client_credentials(http, client)).status_code == 200
