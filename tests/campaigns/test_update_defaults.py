"""PATCH of a draft campaign setting a field back to its default value (found by
tests/platform/test_fuzz.py): the default must be written, not dropped as NULL."""

from __future__ import annotations

from tests.campaigns.factories import create_campaign, make_shop
from tests.conftest import auth


async def test_patch_back_to_the_default_values_is_written(client, db, make_tenant, make_key):
    shop = await make_shop(db, make_tenant, "cdef")
    key = await make_key(shop.ctx.tenant_id)
    campaign = await create_campaign(shop, priority=80, tags=["spring"])
    url = f"/v1/tenants/{shop.ctx.tenant_id}/campaigns/{campaign.id}"
    r = await client.patch(url, json={"bypass_quiet_hours": False, "priority": 50, "tags": []},
                           headers=auth(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["bypass_quiet_hours"], body["priority"], body["tags"]) == (False, 50, [])
    again = (await client.get(url, headers=auth(key))).json()
    assert (again["bypass_quiet_hours"], again["priority"], again["tags"]) == (False, 50, [])
