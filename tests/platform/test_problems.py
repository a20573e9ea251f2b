"""Every error is RFC 9457 problem details naming what was wrong."""

from __future__ import annotations

from tests.conftest import auth

BASE = {"id": "ok-tenant", "name": "x", "country": "FR", "timezone": "Europe/Paris",
        "default_locale": "fr-FR"}


def _is_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["type"].startswith("https://relais.dev/problems/")
    assert body["title"] and body["detail"]
    return body


async def test_body_errors_name_the_field(client, hq_key):
    cases = [
        (BASE | {"unexpected": 1}, "unexpected"),
        (BASE | {"name": 5}, "name"),
        (BASE | {"locales": [1]}, "locales[0]"),
        ({k: v for k, v in BASE.items() if k != "country"}, "country"),
    ]
    for body, field in cases:
        problem = _is_problem(
            await client.post("/v1/hq/tenants", json=body, headers=auth(hq_key)), 400)
        assert problem["field"] == field, problem


async def test_malformed_json_query_and_size(client, hq_key, settings):
    r = await client.post("/v1/hq/tenants", content=b"{bad json",
                          headers=auth(hq_key) | {"content-type": "application/json"})
    assert _is_problem(r, 400)["field"] == "body"
    r = await client.get("/v1/hq/tenants", params={"limit": "many"}, headers=auth(hq_key))
    assert _is_problem(r, 400)["field"] == "limit"
    r = await client.get("/v1/hq/tenants", params={"limit": 0}, headers=auth(hq_key))
    assert _is_problem(r, 400)["field"] == "limit"
    r = await client.get("/v1/hq/tenants", params={"cursor": "%%%"}, headers=auth(hq_key))
    assert _is_problem(r, 422)["field"] == "cursor"
    r = await client.post("/v1/hq/tenants", content=b"x" * (settings.max_body_bytes + 1),
                          headers=auth(hq_key) | {"content-type": "application/json"})
    _is_problem(r, 413)


async def test_unknown_route_and_method(client, hq_key):
    _is_problem(await client.get("/v1/nothing-here"), 404)
    _is_problem(await client.put("/v1/hq/tenants", headers=auth(hq_key)), 405)


async def test_request_id_is_echoed_and_reported(client, hq_key):
    r = await client.get("/v1/hq/tenants/missing", headers=auth(hq_key)
                         | {"X-Request-ID": "trace-12345678"})
    body = _is_problem(r, 404)
    assert r.headers["x-request-id"] == "trace-12345678" == body["request_id"]
    r = await client.get("/v1/hq/tenants", headers=auth(hq_key))
    assert len(r.headers["x-request-id"]) == 32


async def test_nul_anywhere_in_a_json_body_is_a_422_naming_its_field(client, hq_key):
    """Nested strings and keys too; an escaped backslash before u0000 is ordinary text."""
    r = await client.post("/v1/hq/tenants", headers=auth(hq_key), json={
        "id": "nul-tenant", "name": "Nul", "country": "FR", "timezone": "Europe/Paris",
        "default_locale": "fr-FR", "locales": ["fr-FR", "en\x00GB"]})
    assert r.status_code == 422 and r.json()["field"] == "locales[1]"
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.post("/v1/hq/tenants", headers=auth(hq_key), json={
        "id": "nul-tenant", "name": "Nul", "country": "FR", "timezone": "Europe/Paris",
        "default_locale": "fr-FR", "settings": {"a\x00": 1}})
    assert r.status_code == 422 and r.json()["field"].startswith("settings.a")
    r = await client.post("/v1/hq/tenants", headers=auth(hq_key), json={
        "id": "nul-tenant", "name": "back\\u0000slash", "country": "FR",
        "timezone": "Europe/Paris", "default_locale": "fr-FR"})
    assert r.status_code == 201, r.text  # the text "back\u0000slash", no NUL in it


async def test_nul_in_a_path_or_query_parameter_is_a_4xx_naming_it(client, hq_key, make_tenant,
                                                                   make_key):
    tenant = await make_tenant("nul")
    key = await make_key(tenant.id)
    for url in (f"/v1/tenants/{tenant.id}/segments/seg%00x",
                f"/v1/tenants/{tenant.id}/messages/m%00",
                f"/v1/tenants/{tenant.id}/events/x%00", "/v1/hq/templates/t%00"):
        r = await client.get(url, headers=auth(key if "/tenants/" in url else hq_key))
        assert r.status_code == 404, (url, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] in ("segment_id", "msg_id", "message_id", "template_id")
    r = await client.get(f"/v1/tenants/{tenant.id}/messages", headers=auth(key),
                         params={"source_id": "a\x00"})
    assert r.status_code == 422 and r.json()["field"] == "source_id"
    # the tenant itself, with an HQ key (which reaches every tenant's routes)
    r = await client.get("/v1/tenants/nul%00x/customers", headers=auth(hq_key))
    assert 400 <= r.status_code < 500, r.text
