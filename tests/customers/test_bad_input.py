from __future__ import annotations

import uuid

import msgspec

from core.events import imports
from core.events.imports import process_import
from core.jobs.worker import build_worker
from tenants.service import tenant_context
from tests.customers.factories import unique


async def test_malformed_and_oversize_bodies(tenant):
    headers = tenant.headers | {"Content-Type": "application/json"}
    r = await tenant.client.post(f"{tenant.base}/events:batch", content=b'{"items": [',
                                 headers=headers)
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "body"
    r = await tenant.post("/events:batch", {"items": "nope"})
    assert r.status_code == 422 and r.json()["field"] == "items"
    r = await tenant.post("/events:batch", {"items": []})
    assert r.status_code == 422 and r.json()["field"] == "items"
    item = {"message_id": "x", "type": "app_opened", "identifiers": {"app_user_id": "u1"}}
    r = await tenant.post("/events:batch", {"items": [item] * 1001})
    assert r.status_code == 413 and r.json()["field"] == "items"
    big = {"items": [dict(item, properties={"pad": "x" * 2000})] * 600}
    r = await tenant.post("/events:batch", big)
    assert r.status_code == 413
    r = await tenant.post("/events", {"message_id": "x", "type": 3})
    assert r.status_code == 400 and r.json()["field"] == "type"


async def test_single_items_answer_problem_details_naming_the_field(tenant):
    cases = [
        ({"message_id": unique("b"), "type": "app_opened", "identifiers": {"email": "@@"}},
         "identifiers.email"),
        ({"message_id": unique("b"), "type": "app_opened", "identifiers": {"phone": "12"}},
         "identifiers.phone"),
        ({"message_id": unique("b"), "type": "app_opened"}, "identifiers"),
        ({"message_id": unique("b"), "type": "app_opened", "identifiers": {"app_user_id": "u"},
          "occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"message_id": unique("b"), "type": "nps_submitted",
          "identifiers": {"app_user_id": "u"}, "properties": {"score": "ten"}},
         "properties.score"),
        ({"message_id": unique("b"), "type": "identify", "identifiers": {"app_user_id": "u"}},
         "type"),
        ({"message_id": unique("b"), "type": "app_opened", "identifiers": {"fax": "1"}},
         "identifiers.fax"),
    ]
    for body, field in cases:
        r = await tenant.post("/events", body)
        assert r.status_code in (400, 422), (body, r.text)
        assert r.json()["field"] == field, (body, r.json())


async def test_nul_characters_are_refused_before_sql(tenant):
    uid = {"app_user_id": unique("z")}
    r = await tenant.post("/events:batch", {"items": [
        {"message_id": unique("z"), "type": "app_opened", "identifiers": uid,
         "properties": {"note": "a\u0000b"}},
        {"message_id": "bad\u0000id", "type": "app_opened", "identifiers": uid},
        {"message_id": unique("z"), "type": "app_opened", "identifiers": uid}]})
    assert [x["status"] for x in r.json()["results"]] == ["rejected", "rejected", "accepted"]
    assert r.json()["results"][0]["field"] == "items[0].properties"
    r = await tenant.post("/identify", {"identifiers": uid, "traits": {"first_name": "a\u0000"}})
    assert r.status_code == 422 and r.json()["field"] == "traits.first_name"
    r = await tenant.post("/identify", {"identifiers": uid, "traits": {"x": ["\u0000"]}})
    assert r.status_code == 422 and r.json()["field"] == "traits.x[0]"


async def test_a_bad_item_never_sinks_the_batch(tenant):
    good = {"message_id": unique("k"), "type": "app_opened",
            "identifiers": {"app_user_id": unique("k")}}
    r = await tenant.post("/events:batch", {"items": [
        good, {"message_id": unique("k"), "type": "app_opened", "surprise": 1},
        {"message_id": unique("k"), "type": "app_opened", "identifiers": {"email": "x@"}}]})
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted", "rejected", "rejected"]
    assert results[1]["field"] == "items[1].surprise"
    r = await tenant.get(f"/events/{good['message_id']}")
    assert r.status_code == 200 and r.json()["type"] == "app_opened"


async def test_imports_run_in_a_job_and_resume_without_loss(tenant, db, settings):
    items = [{"message_id": f"imp-{i}-{tenant.id}", "type": "trip_validated",
              "identifiers": {"ticketing_id": f"CARD{i % 700}"}, "properties": {"line": "M1"}}
             for i in range(2500)]
    items[7]["properties"] = {}
    r = await tenant.post("/imports", {"kind": "events", "items": items, "source": "ticketing"})
    assert r.status_code == 202, r.text
    import_id = r.json()["id"]
    assert r.json()["status"] == "queued" and r.json()["total"] == 2500

    worker = build_worker(settings, burst=True, poll_delay=0.05, cron_jobs=[])
    await worker.main()
    await worker.close()
    job = (await tenant.get(f"/imports/{import_id}")).json()
    assert job["status"] == "done" and job["processed"] == 2500
    assert job["summary"] == {"accepted": 2499, "rejected": 1}
    assert job["results"][7]["field"] == "items[7].properties.line"

    # A worker that died after ingesting but before recording progress: the re-run
    # reports duplicates and stores nothing twice.
    ctx = await tenant_context(db, tenant.id, settings_actor())
    async with db.tenant_tx(ctx) as conn:
        await conn.execute(
            """update ingest_jobs set status = 'running', processed = 1000,
                   items = $2::text::jsonb,
                   results = (select jsonb_agg(x) from jsonb_array_elements(results)
                              with ordinality as t(x, n) where n <= 1000)
               where id = $1""", uuid.UUID(import_id), msgspec.json.encode(items).decode())
    assert await process_import(db, ctx, uuid.UUID(import_id)) == 1500
    job = (await tenant.get(f"/imports/{import_id}")).json()
    assert job["summary"] == {"accepted": 999, "duplicate": 1500, "rejected": 1}
    async with db.tenant_tx(ctx) as conn:
        assert await conn.fetchval("select count(*) from events where source = 'ticketing'") \
            == 2499
    r = await tenant.post("/imports", {"kind": "events", "items": []})
    assert r.status_code == 422 and r.json()["field"] == "items"
    assert imports.MAX_IMPORT_ITEMS >= 100_000


def settings_actor():
    from tenants.context import SYSTEM
    return SYSTEM
