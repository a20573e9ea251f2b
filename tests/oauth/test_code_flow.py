"""Authorization code + PKCE, refresh rotation and reuse detection, against the live app."""

from __future__ import annotations

from tests.conftest import auth
from tests.oauth.conftest import authorize, exchange, pkce, register


async def test_public_client_code_flow_with_pkce(http, hq_key, make_tenant, make_key):
    tenant = await make_tenant("oa")
    admin = await make_key(tenant.id)
    client = await register(http, hq_key, client_type="public",
                            redirect_uris=["http://127.0.0.1:9/cb"])
    assert client["client_secret"] is None
    verifier, challenge = pkce()
    back = await authorize(http, client, admin, challenge=challenge)
    assert back["state"] == "xyz" and back["code"].startswith("ra_")

    wrong = await exchange(http, client, back["code"], verifier=pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    r = await exchange(http, client, back["code"], verifier=verifier)
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"] == "Bearer" and token["access_token"].startswith("ro_")
    assert token["refresh_token"].startswith("rr_")
    assert set(token["scope"].split()) == {"tenants:read", "customers:read"}
    assert r.headers["cache-control"] == "no-store"

    me = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(token["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == tenant.id
