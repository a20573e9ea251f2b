"""Governance and tenant configuration of plugins, through the API."""

from __future__ import annotations

import logging

import pytest

from core.plugin_config import service
from core.plugin_config.secrets import SecretBox
from tenants.service import tenant_context
from tests.conftest import HQ, auth

SECRET = "s3cr3t-smtp-password-do-not-leak"
HOST = {"host": "smtp.lyon.test", "from_address": "news@lyon.test"}


@pytest.fixture
async def tenant(make_tenant, make_key):
    t = await make_tenant("plug")
    return t.id, await make_key(t.id)


async def _hq_put(client, hq_key, name, **body):
    return await client.put(f"/v1/hq/plugins/{name}", headers=auth(hq_key),
                            json={"allowed": True} | body)


async def test_hq_lists_installed_plugins_with_kind_version_and_schema(client, hq_key):
    r = await client.get("/v1/hq/plugins", headers=auth(hq_key), params={"limit": 500})
    assert r.status_code == 200
    by_name = {p["info"]["name"]: p for p in r.json()["items"]}
    assert {"email", "file_import", "webhook_source", "rest_pull"} <= set(by_name)
    email = by_name["email"]["info"]
    assert email["kind"] == "channel" and email["version"] and email["builtin"]
    assert email["config_schema"]["$defs"]["EmailConfig"]["properties"]["port"]["default"] == 587
    connectors = {n for n, p in by_name.items() if p["info"]["kind"] == "connector"}
    r = await client.get("/v1/hq/plugins", headers=auth(hq_key),
                         params={"kind": "connector", "limit": 2})
    page = r.json()
    assert [p["info"]["kind"] for p in page["items"]] == ["connector", "connector"]
    rest = await client.get("/v1/hq/plugins", headers=auth(hq_key),
                            params={"kind": "connector", "cursor": page["next_cursor"],
                                    "limit": 500})
    paged = [p["info"]["name"] for p in page["items"] + rest.json()["items"]]
    assert sorted(paged) == sorted(connectors) and len(paged) == len(connectors)
    assert (await client.get("/v1/hq/plugins/nope", headers=auth(hq_key))).status_code == 404


async def test_tenants_cannot_use_the_hq_routes(client, tenant):
    _, key = tenant
    assert (await client.get("/v1/hq/plugins", headers=auth(key))).status_code == 403


async def test_a_tenant_enables_only_what_hq_allows(client, hq_key, tenant):
    tenant_id, key = tenant
    url = f"/v1/tenants/{tenant_id}/plugins/whatsapp_cloud"
    body = {"config": {"phone_number_id": "123", "access_token": "tok-whatsapp-123456"}}
    await client.put("/v1/hq/plugins/whatsapp_cloud", headers=auth(hq_key),
                     json={"allowed": False})
    r = await client.put(url, headers=auth(key), json=body)
    assert r.status_code == 403 and "HQ does not allow" in r.json()["detail"]
    assert (await _hq_put(client, hq_key, "whatsapp_cloud")).status_code == 200
    r = await client.put(url, headers=auth(key), json=body)
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] and r.json()["allowed"] and r.json()["problem"] is None
    # HQ withdraws it: the configuration stays, but it no longer runs.
    await client.put("/v1/hq/plugins/whatsapp_cloud", headers=auth(hq_key),
                     json={"allowed": False})
    r = await client.get(url, headers=auth(key))
    assert r.json()["problem"] == "HQ does not allow this plugin"
    await _hq_put(client, hq_key, "whatsapp_cloud")  # HQ-wide row: leave it allowed


@pytest.mark.parametrize(("config", "field"), [
    ({"host": 25, "from_address": "a@b.test"}, "config.host"),
    ({"from_address": "a@b.test"}, "config.host"),
    ({**HOST, "port": 70000}, "config.port"),
    ({**HOST, "tls": "maybe"}, "config.tls"),
    ({**HOST, "colour": "blue"}, "config.colour"),
])
async def test_config_is_validated_against_the_plugin_schema_with_field_errors(
        client, hq_key, tenant, config, field):
    tenant_id, key = tenant
    await _hq_put(client, hq_key, "email")
    r = await client.put(f"/v1/tenants/{tenant_id}/plugins/email", headers=auth(key),
                         json={"config": config})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field


async def test_hq_defaults_merge_under_tenant_values_and_locked_fields_hold(
        client, hq_key, tenant):
    tenant_id, key = tenant
    r = await _hq_put(client, hq_key, "email",
                      default_config={"host": "smtp.group.test", "port": 2525},
                      locked=["host"])
    assert r.status_code == 200, r.text
    bad = await _hq_put(client, hq_key, "email", default_config={"port": "x"})
    assert bad.status_code == 422 and bad.json()["field"] == "default_config.port"
    unknown = await _hq_put(client, hq_key, "email", locked=["nope"])
    assert unknown.status_code == 422 and unknown.json()["field"] == "locked.nope"
    url = f"/v1/tenants/{tenant_id}/plugins/email"
    r = await client.put(url, headers=auth(key),
                         json={"config": {"host": "smtp.mine.test", "from_address": "x@y.z"}})
    assert r.status_code == 422 and r.json()["field"] == "config.host"
    r = await client.put(url, headers=auth(key), json={"config": {"from_address": "x@y.z"}})
    assert r.status_code == 200, r.text
    effective = r.json()["effective_config"]
    assert effective["host"] == "smtp.group.test" and effective["port"] == 2525
    assert r.json()["locked"] == ["host"]
    await _hq_put(client, hq_key, "email")  # leave the HQ row unlocked for other tests


async def test_secrets_are_write_only_encrypted_and_never_logged(
        client, hq_key, tenant, db, caplog):
    tenant_id, key = tenant
    await _hq_put(client, hq_key, "email")
    url = f"/v1/tenants/{tenant_id}/plugins/email"
    with caplog.at_level(logging.DEBUG):
        r = await client.put(url, headers=auth(key),
                             json={"config": {**HOST, "username": "u", "password": SECRET}})
        assert r.status_code == 200, r.text
        assert SECRET not in r.text and r.json()["secrets_set"] == ["password"]
        # Leaving the secret out keeps it; other fields change.
        r = await client.put(url, headers=auth(key),
                             json={"config": {**HOST, "username": "v"}})
        assert r.json()["secrets_set"] == ["password"] and r.json()["config"]["username"] == "v"
        for path in (url, f"/v1/tenants/{tenant_id}/plugins?limit=500",
                     f"/v1/tenants/{tenant_id}/audit"):
            answer = await client.get(path, headers=auth(key))
            assert answer.status_code == 200 and SECRET not in answer.text
        hq_audit = await client.get("/v1/hq/audit", headers=auth(hq_key))
        assert SECRET not in hq_audit.text
    assert SECRET not in caplog.text
    async with db.pool.acquire() as conn, conn.transaction():
        await conn.execute("select set_config('relais.tenant_id', $1, true)", tenant_id)
        row = await conn.fetchrow("select config, secrets from plugin_configs "
                                  "where plugin = 'email'")
    assert "password" not in row["config"] and SECRET.encode() not in bytes(row["secrets"])
    # The runtime gets the decrypted value.
    ctx = await tenant_context(db, tenant_id, HQ.actor)
    box = SecretBox("test-secret-key-not-for-production")
    async with db.tenant_tx(ctx) as conn:
        plugins = client._transport.app.state.plugins
        config = await service.require_enabled(conn, ctx, plugins, box, "email")
        assert config.password == SECRET
        assert "email" in await service.enabled_configs(conn, ctx, plugins, box)
    # Another key cannot read the ciphertext.
    with pytest.raises(Exception, match="cannot be decrypted"):
        SecretBox("another-key").open(row["secrets"], f"plugin\x00{tenant_id}\x00email")
    # An explicit null clears a secret.
    r = await client.put(url, headers=auth(key), json={"config": {**HOST, "password": None}})
    assert r.json()["secrets_set"] == []


async def test_tenant_b_cannot_see_or_remove_tenant_a_configuration(
        client, hq_key, tenant, make_tenant, make_key):
    tenant_a, key_a = tenant
    b = await make_tenant("plug-b")
    key_b = await make_key(b.id)
    await _hq_put(client, hq_key, "email")
    r = await client.put(f"/v1/tenants/{tenant_a}/plugins/email", headers=auth(key_a),
                         json={"config": {**HOST, "password": SECRET}})
    assert r.status_code == 200
    assert (await client.get(f"/v1/tenants/{tenant_a}/plugins/email",
                             headers=auth(key_b))).status_code == 404
    assert (await client.get(f"/v1/tenants/{b.id}/plugins/email",
                             headers=auth(key_b))).status_code == 404
    listed = await client.get(f"/v1/tenants/{b.id}/plugins?limit=500", headers=auth(key_b))
    email = next(p for p in listed.json()["items"] if p["name"] == "email")
    assert not email["configured"] and email["config"] == {}
    assert (await client.delete(f"/v1/tenants/{b.id}/plugins/email",
                                headers=auth(key_b))).status_code == 404
    assert (await client.delete(f"/v1/tenants/{tenant_a}/plugins/email",
                                headers=auth(key_a))).status_code == 204
    assert (await client.get(f"/v1/tenants/{tenant_a}/plugins/email",
                             headers=auth(key_a))).status_code == 404
