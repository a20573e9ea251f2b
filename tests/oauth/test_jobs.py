"""The nightly clean-up removes dead credentials and nothing else."""

from __future__ import annotations

from core.oauth.jobs import purge_oauth_credentials
from core.oauth.store import parse_token
from tenants import service as tenants
from tests.conftest import HQ, auth
from tests.oauth.conftest import client_credentials, register


async def test_purge_removes_long_dead_tokens_and_their_grants(http, db, settings, hq_key,
                                                               make_tenant):
    tenant = await make_tenant("job")
    client = await register(http, hq_key, grant_types=["client_credentials"],
                            redirect_uris=[], tenant=tenant.id)
    dead = (await client_credentials(http, client)).json()["access_token"]
    live = (await client_credentials(http, client)).json()["access_token"]
    ctx = await tenants.tenant_context(db, tenant.id, HQ.actor)
    async with db.tenant_tx(ctx) as conn:
        await conn.execute(
            "update oauth_tokens set expires_at = now() - interval '8 days' where id = $1",
            parse_token(dead)[2])
        await conn.execute(
            "update oauth_grants set created_at = now() - interval '9 days'")

    deleted = await purge_oauth_credentials({"db": db, "settings": settings}, tenant.id)
    assert deleted == 2  # the dead token and its now empty grant
    assert await purge_oauth_credentials({"db": db, "settings": settings}, tenant.id) == 0
    async with db.tenant_tx(ctx) as conn:
        assert await conn.fetchval("select count(*) from oauth_tokens") == 1
        assert await conn.fetchval("select count(*) from oauth_grants") == 1
    assert (await http.get(f"/v1/tenants/{tenant.id}", headers=auth(live))).status_code == 200
