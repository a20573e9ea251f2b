"""The suppression list's hashing key is not in the database alone (version 2), and every
path that writes or matches the list uses the same key: erasure and re-ingestion, hard
bounces and dispatch, campaign planning (HMAC computed in SQL). Tenants created before
the change (version 1: the stored salt is the key) keep matching their old entries."""

from __future__ import annotations

import hashlib
import hmac

import msgspec
import pytest

from core.db import Database
from core.errors import ConfigurationError
from core.events.schemas import IdentifyIn
from core.events.service import identify
from core.identity.keys import Keys, suppression_key
from core.messaging.statuses import suppress
from core.model.service import get_settings
from tests.campaigns.factories import add_customers, make_shop, recipients, run_campaign
from tests.messaging.test_feedback import dsn, email_env, status_url
from tests.templates.factories import unique_id

MONDAY_10H = {"kind": "at", "at": "2030-03-04T10:00:00+01:00"}


async def use_version(db, ctx, version: int) -> bytes:
    """Create the tenant's settings row (as any first use does), force its key version (a
    tenant from before migration m0304 has 1, same salt), and return the stored salt."""
    await get_settings(db, ctx)
    async with db.tenant_tx(ctx) as conn:
        await conn.execute("update tenant_data_settings set hash_key_version = $1", version)
        return bytes(await conn.fetchval("select hash_salt from tenant_data_settings"))


async def identify_email(db, ctx, email: str):
    item = msgspec.convert({"identifiers": {"email": email}}, IdentifyIn)
    return (await identify(db, ctx, [item], source="test"))[0]


async def stored_hashes(db, ctx) -> set[str]:
    async with db.tenant_tx(ctx) as conn:
        return {r[0] for r in await conn.fetch("select value_hash from suppressions")}


def hmac_of(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


async def test_new_tenant_key_is_not_the_stored_salt(env, db, settings):
    async with db.tenant_tx(env.ctx) as conn:  # a new tenant gets version 2
        assert await conn.fetchval(
            "select hash_key_version from tenant_data_settings") in (None, 2)
    email = f"{unique_id('k')}@reseau-lyon.fr"
    customer = await env.customer(email=email)
    r = await env.client.post(f"{env.base}/customers/{customer}/erase", headers=env.headers)
    assert r.status_code == 200, r.text
    async with db.tenant_tx(env.ctx) as conn:
        row = await conn.fetchrow(
            "select hash_salt, hash_key_version from tenant_data_settings")
    salt = bytes(row["hash_salt"])
    assert row["hash_key_version"] == 2
    stored = await stored_hashes(db, env.ctx)
    # Someone with a copy of the database holds the salt: it does not test guesses...
    assert hmac_of(salt, "email", email) not in stored
    # ...the deployment secret is needed too.
    key = suppression_key(settings.secret_key.encode(), env.tenant.id, salt, 2)
    assert key != salt and len(key) == 32
    assert hmac_of(key, "email", email) in stored
    async with db.tenant_tx(env.ctx) as conn:
        assert settings.secret_key not in str(await conn.fetchrow(
            "select * from tenant_data_settings"))


@pytest.mark.parametrize("version", [2, 1])
async def test_erasure_then_reingestion_is_refused(env, db, version):
    salt = await use_version(db, env.ctx, version)
    email = f"{unique_id('k')}@reseau-lyon.fr"
    customer = await env.customer(email=email)
    r = await env.client.post(f"{env.base}/customers/{customer}/erase", headers=env.headers)
    assert r.status_code == 200, r.text
    assert (hmac_of(salt, "email", email) in await stored_hashes(db, env.ctx)) == (version == 1)
    r = await env.client.post(f"{env.base}/identify", headers=env.headers,
                              json={"identifiers": {"email": email.upper()}})
    assert r.status_code == 422 and r.json()["field"] == "identifiers.email", r.text
    assert "suppression list" in r.json()["detail"]


@pytest.mark.parametrize("version", [2, 1])
async def test_hard_bounce_blocks_later_sends(env, sink, db, version):
    await use_version(db, env.ctx, version)
    template_id = await email_env(env, sink, db)
    address = f"{unique_id('gone')}@reseau-lyon.fr"
    customer = await env.customer(first_name="B", email=address,
                                  consents=(("email", "traffic_info"),))
    first = await env.send(template_id, customer)
    assert (await env.dispatch("email")).sent == 1
    r = await env.client.post(await status_url(env), content=dsn(first["id"], address),
                              headers={"content-type": "message/rfc822"})
    assert r.status_code == 200 and r.json() == {"updated": 1}, r.text
    again = await env.send(template_id, customer)
    assert again["status"] == "skipped" and again["status_reason"] == "suppressed"


@pytest.mark.parametrize("version", [2, 1])
async def test_campaign_plan_excludes_a_suppressed_address(db, make_tenant, version):
    shop = await make_shop(db, make_tenant, "skey")
    await use_version(db, shop.ctx, version)
    ok = await add_customers(shop, 2, phone=False)
    suppressed = await add_customers(shop, 1, phone=False)
    async with db.tenant_tx(shop.ctx) as conn:
        email = await conn.fetchval("select email from customers where id = $1",
                                    suppressed[0])
        # hashed in Python here, matched in SQL (HMAC pads) by the planner
        assert await suppress(conn, shop.ctx, db.keys, [("email", email, "complaint")]) == 1
    campaign = await run_campaign(shop, schedule=MONDAY_10H, channels=["email"])
    decided = await recipients(shop, campaign.id)
    assert decided[suppressed[0]]["channels"] == {"email": "suppressed"}
    assert all(decided[c]["step"] == "planned" for c in ok)


async def test_another_secret_does_not_match_old_entries(env, db):
    """Why RELAIS_SECRET_KEY must never change: a version-2 tenant's list, read under
    another secret, matches nothing it recorded. Version 1 tenants do not depend on it."""
    other = Database(db.pool, Keys("another-secret"))
    email = f"{unique_id('k')}@reseau-lyon.fr"
    customer = await env.customer(email=email)
    r = await env.client.post(f"{env.base}/customers/{customer}/erase", headers=env.headers)
    assert r.status_code == 200, r.text
    assert (await identify_email(db, env.ctx, email)).status == "rejected"
    assert (await identify_email(other, env.ctx, email)).status == "accepted"

    await use_version(db, env.ctx, 1)  # the same entries now need the bare salt...
    assert (await identify_email(other, env.ctx, email)).status == "accepted"
    email = f"{unique_id('k')}@reseau-lyon.fr"  # ...and new ones match under any secret
    customer = await env.customer(email=email)
    await env.client.post(f"{env.base}/customers/{customer}/erase", headers=env.headers)
    assert (await identify_email(other, env.ctx, email)).status == "rejected"


async def test_no_secret_fails_only_when_a_v2_key_is_needed(env, db):
    unkeyed = Database(db.pool, Keys(""))
    # No suppression yet: ingestion does not need the key.
    assert (await identify_email(unkeyed, env.ctx, f"{unique_id('k')}@x.fr")).status \
        == "accepted"
    customer = await env.customer()
    r = await env.client.post(f"{env.base}/customers/{customer}/erase", headers=env.headers)
    assert r.status_code == 200, r.text
    with pytest.raises(ConfigurationError, match="RELAIS_SECRET_KEY"):
        await identify_email(unkeyed, env.ctx, f"{unique_id('k')}@x.fr")
    await use_version(db, env.ctx, 1)
    assert (await identify_email(unkeyed, env.ctx, f"{unique_id('k')}@x.fr")).status \
        == "accepted"
