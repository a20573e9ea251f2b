"""Authorization code + PKCE, refresh rotation and reuse detection, against the live app."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import auth
from tests.oauth.conftest import (
    auth_params,
    authorize,
    basic,
    decide,
    exchange,
    form_params,
    pkce,
    post_form,
    register,
    sign_in,
)


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


async def test_code_is_single_use_and_reuse_revokes_its_tokens(http, hq_key, make_tenant,
                                                               make_key):
    tenant = await make_tenant("oa")
    client = await register(http, hq_key)
    back = await authorize(http, client, await make_key(tenant.id))
    first = await exchange(http, client, back["code"])
    assert first.status_code == 200, first.text
    access = first.json()["access_token"]
    assert (await http.get(f"/v1/tenants/{tenant.id}", headers=auth(access))).status_code == 200

    again = await exchange(http, client, back["code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: tokens issued from a replayed code are revoked.
    r = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(access))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_refresh_rotation_and_reuse_detection(http, hq_key, make_tenant, make_key):
    tenant = await make_tenant("oa")
    client = await register(http, hq_key)
    back = await authorize(http, client, await make_key(tenant.id))
    first = (await exchange(http, client, back["code"])).json()

    rotated = await http.post("/oauth/token", auth=basic(client), data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    headers = auth(second["access_token"])
    assert (await http.get(f"/v1/tenants/{tenant.id}", headers=headers)).status_code == 200

    # Narrowing on refresh is allowed; widening is not.
    wider = await http.post("/oauth/token", auth=basic(client), data={
        "grant_type": "refresh_token", "refresh_token": second["refresh_token"],
        "scope": "customers:read customers:write"})
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"

    # The first refresh token comes back: someone holds a copy, the whole chain dies.
    replay = await http.post("/oauth/token", auth=basic(client), data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (await http.get(f"/v1/tenants/{tenant.id}", headers=headers)).status_code == 401
    latest = await http.post("/oauth/token", auth=basic(client), data={
        "grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert latest.status_code == 400 and latest.json()["error"] == "invalid_grant"

    grants = await http.get(f"/v1/tenants/{tenant.id}/oauth/grants",
                            headers=auth(await make_key(tenant.id)))
    assert grants.status_code == 200
    [grant] = grants.json()["items"]
    assert grant["revoked_reason"] == "refresh token reused" and grant["active_tokens"] == 0


async def test_refresh_token_of_another_client_is_rejected(http, hq_key, make_tenant,
                                                           make_key):
    tenant = await make_tenant("oa")
    owner, other = await register(http, hq_key), await register(http, hq_key)
    back = await authorize(http, owner, await make_key(tenant.id))
    tokens = (await exchange(http, owner, back["code"])).json()
    r = await http.post("/oauth/token", auth=basic(other), data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # ...and did not count as reuse: the owner's chain still works.
    r = await http.post("/oauth/token", auth=basic(owner), data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text


async def test_redirect_uri_must_match_exactly(http, hq_key, make_tenant, make_key):
    tenant = await make_tenant("oa")
    client = await register(http, hq_key, redirect_uris=["https://partner.example/callback",
                                                         "https://partner.example/other"])
    for uri in ("https://partner.example/callback/", "https://evil.example/callback",
                "https://partner.example/callback?x=1"):
        r = await http.get("/oauth/authorize", params=auth_params(client, redirect_uri=uri))
        # Never redirect to an unregistered URI: an error page instead.
        assert r.status_code == 400 and "location" not in r.headers
        assert "not supported by client" in r.text
    # With several URIs registered, the request must name one.
    params = auth_params(client)
    del params["redirect_uri"]
    r = await http.get("/oauth/authorize", params=params)
    assert r.status_code == 400 and "redirect_uri" in r.text

    back = await authorize(http, client, await make_key(tenant.id))
    r = await exchange(http, client, back["code"], redirect_uri="https://partner.example/other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_scope_escalation_at_authorization(http, hq_key, make_tenant, make_key):
    await make_tenant("oa")
    client = await register(http, hq_key)
    for scope in ("customers:write", "admin", "keys:write", "customers:read nonsense"):
        r = await http.get("/oauth/authorize", params=auth_params(client, scope=scope))
        assert r.status_code == 302, (scope, r.text)
        back = parse_qs(urlsplit(r.headers["location"]).query)
        assert back["error"] == ["invalid_scope"] and back["state"] == ["xyz"], scope


async def test_narrower_scope_is_granted_as_asked(http, hq_key, make_tenant, make_key):
    tenant = await make_tenant("oa")
    client = await register(http, hq_key)
    back = await authorize(http, client, await make_key(tenant.id), scope="customers:read")
    token = (await exchange(http, client, back["code"])).json()
    assert token["scope"] == "customers:read"
    # tenants:read was not granted: the token can't read the tenant.
    r = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(token["access_token"]))
    assert r.status_code == 403


async def test_public_client_must_use_s256_pkce(http, hq_key):
    client = await register(http, hq_key, client_type="public")
    r = await http.get("/oauth/authorize", params=auth_params(client))
    assert r.status_code == 302
    assert "code_challenge" in parse_qs(urlsplit(r.headers["location"]).query)[
        "error_description"][0]
    params = auth_params(client, challenge=pkce()[1]) | {"code_challenge_method": "plain"}
    r = await http.get("/oauth/authorize", params=params)
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["invalid_request"]


async def test_denying_sends_access_denied(http, hq_key, make_tenant, make_key):
    tenant = await make_tenant("oa")
    client = await register(http, hq_key)
    page = await sign_in(http, auth_params(client), await make_key(tenant.id))
    back = await decide(http, page, "deny")
    assert back["error"] == "access_denied" and back["state"] == "xyz" and "code" not in back


async def test_consent_page_needs_the_session_and_its_csrf_token(http, live_url, hq_key,
                                                                 make_tenant, make_key):
    tenant = await make_tenant("oa")
    client = await register(http, hq_key)
    page = await sign_in(http, auth_params(client), await make_key(tenant.id))
    fields = form_params(page.text)
    # A forged token, or a genuine one replayed for different parameters: refused.
    forged = [(k, "x" * 43 if k == "csrf_token" else v) for k, v in fields]
    r = await post_form(http, "/oauth/authorize", [*forged, ("decision", "approve")])
    assert r.status_code == 403 and "location" not in r.headers
    widened = [*fields, ("scope", "customers:write")]
    r = await post_form(http, "/oauth/authorize", [*widened, ("decision", "approve")])
    assert r.status_code == 403
    # Another browser (no session cookie) posting the genuine form: refused too.
    async with httpx.AsyncClient(base_url=live_url) as stranger:
        r = await post_form(stranger, "/oauth/authorize", [*fields, ("decision", "approve")])
    assert r.status_code == 403


async def test_sign_in_needs_an_admin_key_of_the_tenant(http, hq_key, make_tenant, make_key):
    tenant, other = await make_tenant("oa"), await make_tenant("oa")
    client = await register(http, hq_key)
    params = auth_params(client, tenant=tenant.id)
    r = await sign_in(http, params, "rt_nope_0000_bad")
    assert r.status_code == 401 and "not valid" in r.text
    r = await sign_in(http, params, await make_key(tenant.id, ["customers:read"]))
    assert r.status_code == 401 and "only an admin key" in r.text
    r = await sign_in(http, params, await make_key(other.id))
    assert r.status_code == 401 and f"belongs to tenant {other.id!r}" in r.text.replace(
        "&#39;", "'").replace("&#x27;", "'")
    # An HQ admin approves for the tenant it names.
    page = await sign_in(http, auth_params(client), hq_key, approve_for=tenant.id)
    assert f'id="tenant">{tenant.name}<' in page.text
    back = await decide(http, page)
    token = (await exchange(http, client, back["code"])).json()
    r = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(token["access_token"]))
    assert r.status_code == 200


async def test_concurrent_use_of_one_refresh_token_is_treated_as_reuse(http, hq_key,
                                                                       make_tenant, make_key):
    tenant = await make_tenant("oa")
    client = await register(http, hq_key)
    back = await authorize(http, client, await make_key(tenant.id))
    tokens = (await exchange(http, client, back["code"])).json()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    answers = await asyncio.gather(*(http.post("/oauth/token", auth=basic(client), data=form)
                                     for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [200, 400, 400, 400]
    # The database, not the first read, decided: the loser's replay revoked the chain, the
    # winner's new tokens included.
    winner = next(r for r in answers if r.status_code == 200).json()
    r = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(winner["access_token"]))
    assert r.status_code == 401
