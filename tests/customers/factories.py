"""Objects of the customer-data spine, created through the API (cross-tenant walk and tests)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from tests.conftest import auth

_seq = itertools.count()


def unique(prefix: str = "x") -> str:
    return f"{prefix}{next(_seq)}-{uuid.uuid4().hex[:8]}"


async def make_customer(world: Any, **traits: Any) -> str:
    r = await world.client.post(
        f"/v1/tenants/{world.ctx.tenant_id}/identify", headers=auth(world.admin_key),
        json={"identifiers": {"app_user_id": unique("walk-")}, "traits": traits})
    assert r.status_code == 200, r.text
    return r.json()["customer_id"]


async def make_event(world: Any) -> str:
    message_id = unique("walk-msg-")
    r = await world.client.post(
        f"/v1/tenants/{world.ctx.tenant_id}/events", headers=auth(world.admin_key),
        json={"message_id": message_id, "type": "app_opened",
              "identifiers": {"app_user_id": unique("walk-")}})
    assert r.status_code == 200, r.text
    return message_id


async def make_import(world: Any) -> str:
    r = await world.client.post(
        f"/v1/tenants/{world.ctx.tenant_id}/imports", headers=auth(world.admin_key),
        json={"kind": "identify",
              "items": [{"identifiers": {"app_user_id": unique("walk-")}}]})
    assert r.status_code == 202, r.text
    return r.json()["id"]
