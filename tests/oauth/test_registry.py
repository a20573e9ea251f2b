"""HQ client registry, RFC 8414 metadata, the tenant's access policy and grants."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from tests.conftest import auth
from tests.oauth.conftest import (
    auth_params,
    authorize,
    client_credentials,
    exchange,
    register,
)


async def test_metadata(http, live_url):
    r = await http.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    meta = r.json()
    AuthorizationServerMetadata(meta).validate()
    assert meta["issuer"] == live_url
    assert meta["token_endpoint"] == f"{live_url}/oauth/token"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "admin" not in meta["scopes_supported"]
    assert "customers:read" in meta["scopes_supported"]


async def test_registration_shows_the_secret_once(http, hq_key):
    created = await register(http, hq_key, name="Emailing tool")
    assert created["client_id"].startswith("pc_")
    assert created["client_secret"].startswith("pcs_")
    r = await http.get(f"/v1/hq/oauth/clients/{created['client_id']}", headers=auth(hq_key))
    assert r.status_code == 200 and "client_secret" not in r.json()
    assert r.json()["name"] == "Emailing tool"
    r = await http.get("/v1/hq/oauth/clients/pc_missing", headers=auth(hq_key))
    assert r.status_code == 404


async def test_registration_rejects_bad_input_naming_the_field(http, hq_key, make_tenant,
                                                               make_key):
    tenant = await make_tenant("rg")
    base = {"name": "x", "client_type": "confidential", "scopes": ["customers:read"],
            "grant_types": ["authorization_code"],
            "redirect_uris": ["https://partner.example/cb"]}
    cases = [
        ({"redirect_uris": ["http://partner.example/cb"]}, "redirect_uris[0]"),
        ({"redirect_uris": ["https://partner.example/cb#frag"]}, "redirect_uris[0]"),
        ({"redirect_uris": ["ftp://partner.example/cb"]}, "redirect_uris[0]"),
        ({"redirect_uris": []}, "redirect_uris"),
        ({"scopes": ["customers:read", "admin"]}, "scopes[1]"),
        ({"scopes": ["keys:write"]}, "scopes[0]"),
        ({"scopes": ["nope"]}, "scopes[0]"),
        ({"grant_types": ["refresh_token"]}, "grant_types"),
        ({"grant_types": ["client_credentials"]}, "tenant"),
        ({"grant_types": ["client_credentials"], "tenant": "no-such"}, "tenant"),
        ({"client_type": "public", "grant_types": ["client_credentials"],
          "tenant": tenant.id}, "grant_types"),
        ({"client_type": "public", "can_introspect": True}, "can_introspect"),
        ({"grant_types": ["implicit"]}, "grant_types[0]"),
        ({"extra": 1}, "extra"),
    ]
    for change, field in cases:
        r = await http.post("/v1/hq/oauth/clients", json=base | change, headers=auth(hq_key))
        assert r.status_code in (400, 422), (change, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] == field, (change, r.json())
    # Loopback http is fine (RFC 8252), as is a localhost name.
    for uri in ("http://127.0.0.1:9000/cb", "http://localhost/cb", "http://[::1]:80/cb"):
        r = await http.post("/v1/hq/oauth/clients", json=base | {"redirect_uris": [uri]},
                            headers=auth(hq_key))
        assert r.status_code == 201, (uri, r.text)
    # HQ only, and only with the oauth scope.
    r = await http.post("/v1/hq/oauth/clients", json=base,
                        headers=auth(await make_key(tenant.id)))
    assert r.status_code == 403


async def test_listing_update_and_hq_audit(http, hq_key):
    made = [await register(http, hq_key, name=f"list {i}") for i in range(3)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await http.get("/v1/hq/oauth/clients", params=params,
                               headers=auth(hq_key))).json()
        seen += [c["client_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert {c["client_id"] for c in made} <= set(seen) and len(seen) == len(set(seen))

    cid = made[0]["client_id"]
    r = await http.patch(f"/v1/hq/oauth/clients/{cid}", headers=auth(hq_key),
                         json={"name": "renamed", "scopes": ["events:write"]})
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    assert r.json()["scopes"] == ["events:write"]
    r = await http.patch(f"/v1/hq/oauth/clients/{cid}", headers=auth(hq_key),
                         json={"redirect_uris": []})
    assert r.status_code == 422 and r.json()["field"] == "redirect_uris"
    audit = (await http.get("/v1/hq/audit", headers=auth(hq_key))).json()["items"]
    actions = {(e["action"], e["target_id"]) for e in audit}
    assert ("oauth_client.created", cid) in actions and ("oauth_client.updated", cid) in actions


async def test_tenant_policy_restricts_partners_and_revokes_their_tokens(
        http, hq_key, make_tenant, make_key):
    tenant = await make_tenant("rg")
    admin = auth(await make_key(tenant.id))
    allowed = await register(http, hq_key, grant_types=["client_credentials"],
                             redirect_uris=[], tenant=tenant.id)
    shut_out = await register(http, hq_key, grant_types=["client_credentials"],
                              redirect_uris=[], tenant=tenant.id)
    interactive = await register(http, hq_key)
    kept = (await client_credentials(http, allowed)).json()["access_token"]
    cut = (await client_credentials(http, shut_out)).json()["access_token"]

    r = await http.get(f"/v1/tenants/{tenant.id}/oauth/policy", headers=admin)
    assert r.json()["mode"] == "open" and r.json()["allowed_clients"] == []
    r = await http.put(f"/v1/tenants/{tenant.id}/oauth/policy", headers=admin,
                       json={"mode": "allowlist", "allowed_clients": ["pc_unknown"]})
    assert r.status_code == 422 and r.json()["field"] == "allowed_clients[0]"
    r = await http.put(f"/v1/tenants/{tenant.id}/oauth/policy", headers=admin,
                       json={"mode": "allowlist", "allowed_clients": [allowed["client_id"]]})
    assert r.status_code == 200, r.text
    assert r.json()["allowed_clients"] == [allowed["client_id"]]

    assert (await http.get(f"/v1/tenants/{tenant.id}", headers=auth(kept))).status_code == 200
    assert (await http.get(f"/v1/tenants/{tenant.id}", headers=auth(cut))).status_code == 401
    r = await client_credentials(http, shut_out)
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    # The consent page refuses too, telling the partner through its redirect URI.
    r = await http.get("/oauth/authorize", params=auth_params(interactive, tenant=tenant.id))
    assert r.status_code == 200  # not signed in yet: the sign-in page
    from tests.oauth.conftest import sign_in
    r = await sign_in(http, auth_params(interactive, tenant=tenant.id),
                      await make_key(tenant.id))
    assert r.status_code == 302
    back = parse_qs(urlsplit(r.headers["location"]).query)
    assert back["error"] == ["access_denied"] and "does not allow" in back[
        "error_description"][0]

    r = await http.put(f"/v1/tenants/{tenant.id}/oauth/policy", headers=admin,
                       json={"mode": "open"})
    assert r.status_code == 200
    assert (await client_credentials(http, shut_out)).status_code == 200
    # Policy changes need oauth:write; a partner token never has it.
    r = await http.put(f"/v1/tenants/{tenant.id}/oauth/policy", headers=auth(kept),
                       json={"mode": "open"})
    assert r.status_code == 403


async def test_grants_are_listed_and_revocable_by_the_tenant(http, hq_key, make_tenant,
                                                             make_key):
    tenant = await make_tenant("rg")
    admin_key = await make_key(tenant.id)
    client = await register(http, hq_key, name="BI tool")
    back = await authorize(http, client, admin_key)
    tokens = (await exchange(http, client, back["code"])).json()

    r = await http.get(f"/v1/tenants/{tenant.id}/oauth/grants", headers=auth(admin_key))
    [grant] = r.json()["items"]
    assert grant["client_name"] == "BI tool" and grant["grant_type"] == "authorization_code"
    assert grant["subject"].startswith("tenant_key:") and grant["active_tokens"] == 2
    r = await http.get(f"/v1/tenants/{tenant.id}/oauth/grants",
                       params={"active": "false"}, headers=auth(admin_key))
    assert r.json()["items"] == []

    r = await http.delete(f"/v1/tenants/{tenant.id}/oauth/grants/{grant['id']}",
                          headers=auth(admin_key))
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert r.json()["active_tokens"] == 0
    r = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(tokens["access_token"]))
    assert r.status_code == 401
    r = await http.delete(f"/v1/tenants/{tenant.id}/oauth/grants/nope",
                          headers=auth(admin_key))
    assert r.status_code == 404

    # Consent and issuance are in the tenant's audit log, naming approver and client.
    log = (await http.get(f"/v1/tenants/{tenant.id}/audit",
                          headers=auth(admin_key))).json()["items"]
    consent = next(e for e in log if e["action"] == "oauth.consent_granted")
    assert consent["actor_kind"] == "tenant_key" and consent["client_id"] == client["client_id"]
    issued = next(e for e in log if e["action"] == "oauth.token_issued")
    assert issued["actor_kind"] == "oauth" and issued["client_id"] == client["client_id"]
    assert any(e["action"] == "oauth.grant_revoked" for e in log)


async def test_grant_pagination(http, hq_key, make_tenant, make_key):
    tenant = await make_tenant("rg")
    client = await register(http, hq_key, grant_types=["client_credentials"],
                            redirect_uris=[], tenant=tenant.id)
    for _ in range(5):
        assert (await client_credentials(http, client)).status_code == 200
    admin = auth(await make_key(tenant.id))
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "client_id": client["client_id"]} | (
            {"cursor": cursor} if cursor else {})
        r = await http.get(f"/v1/tenants/{tenant.id}/oauth/grants", params=params,
                           headers=admin)
        assert r.status_code == 200, r.text
        seen += [g["created_at"] + g["id"] for g in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    r = await http.get(f"/v1/tenants/{tenant.id}/oauth/grants", params={"cursor": "!!"},
                       headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "cursor"
