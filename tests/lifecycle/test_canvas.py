"""The global lifecycle canvas over HTTP: publish, pilot on one tenant, propagate.

HQ-wide rollout state is shared by the session, so the test ends by propagating the
default model again.
"""

from __future__ import annotations

import copy

import msgspec

from core.lifecycle.model import default_version
from core.lifecycle.service import evaluate
from tests.conftest import auth
from tests.lifecycle.conftest import make_town


def _default_body() -> dict:
    return msgspec.to_builtins(default_version())


def _with_dormant() -> dict:
    """v2: a `dormant` stage between lapsed and inactive; tighter inactive bounds."""
    body = _default_body()
    stages = body["definition"]["stages"]
    dormant = copy.deepcopy(next(s for s in stages if s["name"] == "inactive"))
    dormant.update(name="dormant", description="no activity for more than dormant_days")
    dormant["when"]["value"] = {"param": "dormant_days"}
    stages.insert([s["name"] for s in stages].index("inactive"), dormant)
    body["parameters"]["dormant_days"] = {"default": 180, "mode": "locked"}
    body["parameters"]["inactive_days"].update(max=120)
    body["notes"] = "v2: dormant stage"
    return body


async def _stage_of(db, town, who: str) -> str:
    async with db.tenant_tx(town.ctx) as conn:
        return await conn.fetchval("select stage from customers where id = $1", town.ids[who])


async def test_publish_pilot_then_propagate_a_new_stage_model(
        client, db, hq_key, make_tenant, make_key):
    hq = auth(hq_key)
    a = await make_town(db, make_tenant, make_key, "pilot")
    b = await make_town(db, make_tenant, make_key, "other")
    try:
        r = await client.post("/v1/hq/canvas/versions", headers=hq, json=_default_body())
        assert r.status_code == 201, r.text
        base = (await client.get("/v1/hq/canvas/rollout", headers=hq)).json()["current_version"]
        r = await client.put(f"/v1/tenants/{b.ctx.tenant_id}/canvas/overlay",
                             headers=auth(b.key), json={"overrides": {"inactive_days": 150}})
        assert r.status_code == 200, r.text

        r = await client.post("/v1/hq/canvas/versions", headers=hq, json=_with_dormant())
        assert r.status_code == 201, r.text
        v2 = r.json()["version"]
        r = await client.post(f"/v1/hq/canvas/versions/{v2}/pilot", headers=hq,
                              json={"tenants": [a.ctx.tenant_id]})
        assert r.status_code == 200, r.text
        versions = {t["tenant_id"]: (t["version"], t["pilot"]) for t in r.json()["tenants"]}
        assert versions[a.ctx.tenant_id] == (v2, True)
        assert versions[b.ctx.tenant_id] == (base, False)

        effective = (await client.get(f"/v1/tenants/{a.ctx.tenant_id}/canvas/effective",
                                      headers=auth(a.key))).json()
        assert (effective["version"], effective["pilot"]) == (v2, True)
        assert "dormant" in [s["name"] for s in effective["definition"]["stages"]]
        r = await client.get(f"/v1/tenants/{b.ctx.tenant_id}/overlays", headers=auth(b.key))
        assert {"kind": "lifecycle_canvas", "version": base, "pilot": False} in r.json()["items"]

        # Pilot tenant a runs v2, b stays on the current model (with its own tuning).
        await evaluate(db, a.ctx)
        await evaluate(db, b.ctx)
        assert await _stage_of(db, a, "dora") == "dormant"
        assert await _stage_of(db, b, "dora") == "inactive"
        # v2 caps inactive_days at 120: the pilot tenant cannot go beyond.
        r = await client.put(f"/v1/tenants/{a.ctx.tenant_id}/canvas/overlay",
                             headers=auth(a.key), json={"overrides": {"inactive_days": 150}})
        assert r.status_code == 422 and r.json()["bounds"] == {"min": 30, "max": 120}

        r = await client.post(f"/v1/hq/canvas/versions/{v2}/propagate", headers=hq)
        assert r.status_code == 200, r.text
        rollout = r.json()
        assert rollout["current_version"] == v2
        assert all(t["version"] == v2 and not t["pilot"] for t in rollout["tenants"]
                   if t["tenant_id"] in (a.ctx.tenant_id, b.ctx.tenant_id))
        conflicts = {c["tenant_id"]: c["ignored"] for c in rollout["conflicts"]}
        assert [i["parameter"] for i in conflicts[b.ctx.tenant_id]] == ["inactive_days"]
        effective = (await client.get(f"/v1/tenants/{b.ctx.tenant_id}/canvas/effective",
                                      headers=auth(b.key))).json()
        assert effective["version"] == v2 and effective["parameters"]["inactive_days"] == 90
        assert effective["ignored"][0]["parameter"] == "inactive_days"
        run = await evaluate(db, b.ctx)
        assert run.canvas_version == v2 and await _stage_of(db, b, "dora") == "dormant"
        r = await client.get(f"/v1/hq/canvas/versions/{v2}", headers=hq)
        assert r.json()["parameters"]["dormant_days"]["mode"] == "locked"
    finally:
        r = await client.post("/v1/hq/canvas/versions", headers=hq, json=_default_body())
        await client.post(f"/v1/hq/canvas/versions/{r.json()['version']}/propagate",
                          headers=hq)


async def test_hq_canvas_routes_refuse_tenants_and_bad_versions(client, hq_key, town):
    assert (await client.get("/v1/hq/canvas/rollout",
                             headers=auth(town.key))).status_code == 403
    body = _default_body()
    body["definition"]["stages"][1]["when"]["value"] = {"param": "nope"}
    r = await client.post("/v1/hq/canvas/versions", headers=auth(hq_key), json=body)
    assert r.status_code == 422
    assert r.json()["field"] == "definition.stages[1].when.value"
    body = _default_body()
    body["definition"]["stages"].pop()  # no catch-all last stage
    r = await client.post("/v1/hq/canvas/versions", headers=auth(hq_key), json=body)
    assert r.status_code == 422 and "exactly one stage" in r.json()["detail"]
    body = _default_body()
    body["parameters"]["inactive_days"]["min"] = 400  # default outside its own bounds
    r = await client.post("/v1/hq/canvas/versions", headers=auth(hq_key), json=body)
    assert r.status_code == 422 and r.json()["field"].startswith("parameters.inactive_days")
    r = await client.post("/v1/hq/canvas/versions/99999/propagate", headers=auth(hq_key))
    assert r.status_code == 404
