"""Revocation (RFC 7009), introspection (RFC 7662), expiry and RFC 6750 errors."""

from __future__ import annotations

from api.middleware import actor_of
from core.oauth.store import authenticate_access_token, parse_token
from tenants import service as tenants
from tests.conftest import HQ, auth
from tests.oauth.conftest import authorize, basic, client_credentials, exchange, register


async def _expire(db, tenant_id: str, token: str) -> None:
    ctx = await tenants.tenant_context(db, tenant_id, HQ.actor)
    async with db.tenant_tx(ctx) as conn:
        await conn.execute("update oauth_tokens set expires_at = now() - interval '1 second' "
                           "where id = $1", parse_token(token)[2])


async def _machine(http, hq_key, tenant_id, **fields):
    return await register(http, hq_key, grant_types=["client_credentials"], redirect_uris=[],
                          tenant=tenant_id, **fields)


async def test_introspection_of_active_expired_and_revoked_tokens(http, db, live_url, hq_key,
                                                                  make_tenant):
    tenant = await make_tenant("tk")
    client = await _machine(http, hq_key, tenant.id)
    resource_server = await register(http, hq_key, grant_types=["client_credentials"],
                                     redirect_uris=[], tenant=tenant.id, can_introspect=True)
    stranger = await _machine(http, hq_key, tenant.id)
    token = (await client_credentials(http, client)).json()["access_token"]

    async def introspect(who, value=token, **extra):
        r = await http.post("/oauth/introspect", data={"token": value, **extra},
                            auth=basic(who))
        assert r.status_code == 200, r.text
        return r.json()

    info = await introspect(resource_server)
    assert info["active"] is True
    assert info["client_id"] == client["client_id"] and info["tenant"] == tenant.id
    assert info["scope"] == "customers:read tenants:read" and info["token_type"] == "Bearer"
    assert info["exp"] - info["iat"] == 3600 and info["iss"] == live_url
    assert (await introspect(client, token_type_hint="access_token"))["active"] is True
    # A client may not introspect another client's tokens (unless it is a resource server).
    assert await introspect(stranger) == {"active": False}
    assert await introspect(resource_server, "ro_nope_0_x") == {"active": False}
    assert await introspect(resource_server, "garbage") == {"active": False}
    r = await http.post("/oauth/introspect", data={"token": token})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"

    expiring = (await client_credentials(http, client)).json()["access_token"]
    await _expire(db, tenant.id, expiring)
    assert await introspect(resource_server, expiring) == {"active": False}
    r = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(expiring))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == ('Bearer realm="relais", error="invalid_token", '
                                             'error_description="the access token expired"')
    assert r.headers["content-type"] == "application/problem+json"

    r = await http.post("/oauth/revoke", data={"token": token}, auth=basic(client))
    assert r.status_code == 200
    assert await introspect(resource_server) == {"active": False}


async def test_revocation(http, db, hq_key, make_tenant, make_key):
    tenant = await make_tenant("tk")
    client = await _machine(http, hq_key, tenant.id)
    other = await _machine(http, hq_key, tenant.id)
    token = (await client_credentials(http, client)).json()["access_token"]
    headers = auth(token)

    # Only the client the token was issued to may revoke it.
    r = await http.post("/oauth/revoke", data={"token": token}, auth=basic(other))
    assert r.status_code == 400
    assert (await http.get(f"/v1/tenants/{tenant.id}", headers=headers)).status_code == 200

    r = await http.post("/oauth/revoke", data={"token": token,
                                               "token_type_hint": "access_token"},
                        auth=basic(client))
    assert r.status_code == 200 and r.json() == {}
    r = await http.get(f"/v1/tenants/{tenant.id}", headers=headers)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert 'error_description="the access token was revoked"' in r.headers["www-authenticate"]
    # RFC 7009 §2.2: unknown or already revoked tokens still answer 200.
    for value in (token, "ro_nope_1_x", "whatever"):
        r = await http.post("/oauth/revoke", data={"token": value}, auth=basic(client))
        assert r.status_code == 200, value
    r = await http.post("/oauth/revoke", data={"token": token, "token_type_hint": "bogus"},
                        auth=basic(client))
    assert r.json()["error"] == "unsupported_token_type"

    # The revocation is audited in the tenant, attributed to the partner.
    log = (await http.get(f"/v1/tenants/{tenant.id}/audit",
                          headers=auth(await make_key(tenant.id)))).json()["items"]
    revoked = [e for e in log if e["action"] == "oauth.token_revoked"]
    assert revoked and revoked[0]["client_id"] == client["client_id"]
    assert revoked[0]["target_id"] == parse_token(token)[2]


async def test_revoking_a_refresh_token_revokes_its_grant(http, hq_key, make_tenant,
                                                          make_key):
    tenant = await make_tenant("tk")
    client = await register(http, hq_key, client_type="public",
                            redirect_uris=["http://localhost:8765/cb"])
    from tests.oauth.conftest import pkce
    verifier, challenge = pkce()
    back = await authorize(http, client, await make_key(tenant.id), challenge=challenge)
    tokens = (await exchange(http, client, back["code"], verifier=verifier)).json()
    # A public client revokes with its client_id alone (no secret to present).
    r = await http.post("/oauth/revoke", data={"token": tokens["refresh_token"],
                                               "client_id": client["client_id"]})
    assert r.status_code == 200, r.text
    r = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(tokens["access_token"]))
    assert r.status_code == 401
    r = await http.post("/oauth/token", data={"grant_type": "refresh_token",
                                              "refresh_token": tokens["refresh_token"],
                                              "client_id": client["client_id"]})
    assert r.json()["error"] == "invalid_grant"


async def test_unknown_and_malformed_bearer_tokens(http, make_tenant):
    tenant = await make_tenant("tk")
    for value in ("ro_", "ro_x", f"ro_{tenant.id}_abc_def", "ro_nope_abc_def"):
        r = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(value))
        assert r.status_code == 401, value
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_token_principal_carries_the_client_for_audit(http, db, hq_key, make_tenant):
    tenant = await make_tenant("tk")
    client = await _machine(http, hq_key, tenant.id)
    token = (await client_credentials(http, client)).json()["access_token"]
    principal = await authenticate_access_token(db, token)
    assert principal.kind == "oauth" and principal.tenant_id == tenant.id
    assert principal.client_id == client["client_id"]
    assert principal.scopes == frozenset({"customers:read", "tenants:read"})
    actor = actor_of(principal)  # what the middleware puts in the tenant context
    assert actor.client_id == client["client_id"] and actor.id == parse_token(token)[2]
