"""Segments end to end: preview, save, refresh (jobs), membership facts, global ones."""

from __future__ import annotations

import pytest

from core.jobs.worker import build_worker
from core.segments.membership import refresh_segment
from tenants.context import SYSTEM
from tenants.service import context_for
from tests.conftest import auth
from tests.segments.factories import person, track, trips

T1_REGULARS = {"type": "event", "event": "trip_validated", "op": "gte", "value": 10,
               "window": {"last_days": 30},
               "where": [{"property": "line", "op": "eq", "value": "T1"}]}
FRENCH = {"type": "field", "field": "country", "value": "FR"}


@pytest.fixture
async def network(db, make_tenant, make_key):
    tenant = await make_tenant("segapi")
    ctx = context_for(tenant, SYSTEM)
    ids = await track(db, ctx, trips("alice", 12) + trips("bob", 3) + trips("bob", 9, line="T2")
                      + trips("dan", 12, days_ago=40))
    for who, country in (("alice", "FR"), ("bob", "FR"), ("carol", "MA")):
        ids[who] = await person(db, ctx, who, country=country)
    return ctx, await make_key(tenant.id), ids


def _url(ctx, tail: str = "") -> str:
    return f"/v1/tenants/{ctx.tenant_id}/segments{tail}"


async def test_preview_counts_and_samples_without_saving(client, network):
    ctx, key, ids = network
    r = await client.post(_url(ctx, "/preview"), headers=auth(key),
                          json={"definition": T1_REGULARS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 1 and [c["id"] for c in body["sample"]] == [str(ids["alice"])]
    r = await client.post(_url(ctx, "/preview"), headers=auth(key),
                          json={"definition": {"type": "and", "conditions": [
                              FRENCH, {"type": "not", "condition": T1_REGULARS}]},
                              "sample_size": 0})
    assert r.json()["count"] == 1 and r.json()["sample"] == []  # bob
    r = await client.get(_url(ctx), headers=auth(key))
    assert [s for s in r.json()["items"] if s["scope"] == "local"] == []


@pytest.mark.parametrize(("definition", "field", "words"), [
    ({"type": "field", "field": "shoe_size", "value": 4}, "definition.field", "unknown field"),
    ({"type": "and", "conditions": [FRENCH, {"type": "event", "event": "teleported",
                                             "value": 1}]},
     "definition.conditions[1].event", "unknown event type"),
    ({"type": "field", "field": "country", "op": "gt", "value": 3}, "definition.value",
     "expected a string"),
    ({"type": "event", "event": "ticket_purchased", "measure": "sum", "property": "product",
      "value": 3}, "definition.property", "not a number"),
    ({"type": "event", "event": "trip_validated", "value": {"param": "n"}}, "definition.value",
     "only exist in canvas"),
    ({"type": "event", "event": "trip_validated", "value": 1,
      "where": [{"property": "colour", "value": "red"}]}, "definition.where[0].property",
     "unknown property"),
    ({"type": "consent", "channel": "email", "purpose": "spam"}, "definition.purpose",
     "unknown purpose"),
    ({"type": "stage", "stages": ["zombie"]}, "definition.stages[0]", "unknown stage"),
    ({"type": "segment", "segment_id": "seg_0000000000000000"}, "definition.segment_id",
     "not found"),
])
async def test_bad_definitions_are_refused_naming_the_field(client, network, definition,
                                                            field, words):
    ctx, key, _ = network
    r = await client.post(_url(ctx, "/preview"), headers=auth(key),
                          json={"definition": definition})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field and words in r.json()["detail"]


async def test_malformed_tree_is_a_400_naming_the_field(client, network):
    ctx, key, _ = network
    r = await client.post(_url(ctx, "/preview"), headers=auth(key),
                          json={"definition": {"type": "and", "conditions": [{"type": "xor"}]}})
    assert r.status_code == 400 and "definition.conditions[0]" in r.json()["field"]


async def test_refresh_records_entries_exits_and_facts(client, db, network):
    ctx, key, ids = network
    r = await client.post(_url(ctx), headers=auth(key),
                          json={"name": "French", "definition": FRENCH, "refresh_minutes": None})
    assert r.status_code == 201, r.text
    segment_id = r.json()["id"]
    first = await refresh_segment(db, ctx, segment_id)
    assert (first.members, first.entered, first.exited) == (2, 2, 0)
    await person(db, ctx, "alice", country="MA")
    await person(db, ctx, "carol", country="FR")
    second = await refresh_segment(db, ctx, segment_id)
    assert (second.members, second.entered, second.exited) == (2, 1, 1)
    again = await refresh_segment(db, ctx, segment_id)
    assert (again.entered, again.exited) == (0, 0)  # idempotent
    r = await client.get(_url(ctx, f"/{segment_id}/members"), headers=auth(key))
    assert {m["customer_id"] for m in r.json()["items"]} == {str(ids["bob"]), str(ids["carol"])}
    async with db.tenant_tx(ctx) as conn:
        facts = await conn.fetch(
            """select type, customer_id from events where properties->>'segment_id' = $1
               order by id""", segment_id)
        stints = await conn.fetchval(
            "select count(*) from segment_memberships where segment_id = $1", segment_id)
    assert sorted((f["type"], f["customer_id"]) for f in facts) == sorted([
        ("segment_entered", ids["alice"]), ("segment_entered", ids["bob"]),
        ("segment_entered", ids["carol"]), ("segment_exited", ids["alice"])])
    assert stints == 3
    r = await client.get(_url(ctx, f"/{segment_id}"), headers=auth(key))
    assert r.json()["member_count"] == 2 and r.json()["refreshed_at"]


async def test_on_demand_refresh_is_a_deduplicated_job(client, network, settings):
    ctx, key, _ = network
    r = await client.post(_url(ctx), headers=auth(key),
                          json={"name": "T1 regulars", "definition": T1_REGULARS})
    segment_id = r.json()["id"]
    first = await client.post(_url(ctx, f"/{segment_id}/refresh"), headers=auth(key))
    second = await client.post(_url(ctx, f"/{segment_id}/refresh"), headers=auth(key))
    assert first.status_code == 202 and first.json()["queued"] is True
    assert second.json()["queued"] is False and second.json()["job_id"] == first.json()["job_id"]
    worker = build_worker(settings, burst=True, poll_delay=0.05)
    try:
        await worker.main()
    finally:
        await worker.close()
    r = await client.get(_url(ctx, f"/{segment_id}"), headers=auth(key))
    assert r.json()["member_count"] == 1


async def test_references_cycles_and_archiving(client, network):
    ctx, key, _ = network
    base = (await client.post(_url(ctx), headers=auth(key),
                              json={"name": "base", "definition": FRENCH})).json()["id"]
    user = await client.post(_url(ctx), headers=auth(key), json={
        "name": "user", "definition": {"type": "and", "conditions": [
            {"type": "segment", "segment_id": base}, T1_REGULARS]}})
    assert user.status_code == 201, user.text
    r = await client.post(_url(ctx, "/preview"), headers=auth(key),
                          json={"definition": user.json()["definition"]})
    assert r.json()["count"] == 1
    r = await client.patch(_url(ctx, f"/{base}"), headers=auth(key), json={
        "definition": {"type": "segment", "segment_id": user.json()["id"]}})
    assert r.status_code == 422 and "itself" in r.json()["detail"]
    r = await client.post(_url(ctx), headers=auth(key), json={"name": "BASE",
                                                               "definition": FRENCH})
    assert r.status_code == 409 and r.json()["field"] == "name"
    assert (await client.delete(_url(ctx, f"/{base}"), headers=auth(key))).status_code == 409
    r = await client.delete(_url(ctx, f"/{user.json()['id']}"), headers=auth(key))
    assert r.status_code == 200 and r.json()["status"] == "archived"
    assert (await client.delete(_url(ctx, f"/{base}"), headers=auth(key))).status_code == 200


async def test_global_segments_exist_everywhere_and_count_each_tenants_data(
        client, db, network, make_tenant, make_key, hq_key):
    ctx, key, _ = network
    other = await make_tenant("segapi")
    other_key = await make_key(other.id)
    r = await client.post("/v1/hq/segments", headers=auth(hq_key),
                          json={"name": f"Frequent T1 {ctx.tenant_id}", "definition": T1_REGULARS})
    assert r.status_code == 201, r.text
    global_id = r.json()["id"]
    assert global_id.startswith("gseg_") and r.json()["scope"] == "global"
    r = await client.post("/v1/hq/segments/preview", headers=auth(hq_key), json={
        "definition": T1_REGULARS, "tenants": [ctx.tenant_id, other.id]})
    assert r.status_code == 200
    assert {t["tenant_id"]: t["count"] for t in r.json()["tenants"]} == {ctx.tenant_id: 1,
                                                                        other.id: 0}
    assert "sample" not in r.json()
    for k, tenant in ((key, ctx.tenant_id), (other_key, other.id)):
        listed = (await client.get(f"/v1/tenants/{tenant}/segments?limit=500",
                                   headers=auth(k))).json()["items"]
        assert global_id in [s["id"] for s in listed]
    # Tenants use global segments, and cannot change them.
    r = await client.patch(_url(ctx, f"/{global_id}"), headers=auth(key), json={"name": "x"})
    assert r.status_code == 403
    assert (await client.delete(_url(ctx, f"/{global_id}"), headers=auth(key))).status_code == 403
    r = await client.post(_url(ctx, "/preview"), headers=auth(key), json={
        "definition": {"type": "and", "conditions": [{"type": "segment", "segment_id": global_id},
                                                     FRENCH]}})
    assert r.json()["count"] == 1
    result = await refresh_segment(db, ctx, global_id)
    assert result.members == 1
    # HQ routes are HQ's: a tenant key gets 403.
    assert (await client.get("/v1/hq/segments", headers=auth(key))).status_code == 403
    # A global definition only uses the core dictionary.
    r = await client.post("/v1/hq/segments", headers=auth(hq_key), json={
        "name": "tier", "definition": {"type": "field", "field": "loyalty_tier", "value": "x"}})
    assert r.status_code == 422 and r.json()["field"] == "definition.field"
