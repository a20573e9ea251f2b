from __future__ import annotations

import asyncio
import uuid

from tests.customers.factories import unique


async def test_identify_creates_then_updates_a_profile(tenant):
    r = await tenant.post("/identify", {
        "identifiers": {"email": "Alice.Martin@LaPoste.NET ", "phone": "06 12 34 56 79"},
        "traits": {"first_name": "Alice", "birth_date": "1990-05-01", "country": "FR"}})
    assert r.status_code == 200, r.text
    customer_id = r.json()["customer_id"]
    r = await tenant.post("/identify", {"identifiers": {"phone": "+33612345679"},
                                        "traits": {"last_name": "Martin"}})
    assert r.json()["customer_id"] == customer_id
    view = (await tenant.get(f"/customers/{customer_id}")).json()
    profile = view["profile"]
    assert (profile["first_name"], profile["last_name"]) == ("Alice", "Martin")
    assert profile["email"] == "alice.martin@laposte.net" and profile["phone"] == "+33612345679"
    assert profile["birth_date"] == "1990-05-01"
    assert {(i["kind"], i["value"]) for i in view["identifiers"]} == {
        ("email", "alice.martin@laposte.net"), ("phone", "+33612345679")}
    found = (await tenant.get("/customers", params={"email": "ALICE.martin@laposte.net"})).json()
    assert [c["id"] for c in found["items"]] == [customer_id]


async def test_event_batch_results_per_item_and_replays_are_duplicates(tenant):
    uid = unique("u")
    items = [
        {"message_id": "m1", "type": "app_opened", "identifiers": {"app_user_id": uid}},
        {"message_id": "m2", "type": "nps_submitted", "identifiers": {"app_user_id": uid},
         "properties": {"score": 11}},
        {"message_id": "m3", "type": "trip_validated", "identifiers": {"email": "not-an-email"},
         "properties": {"line": "T1"}},
        {"message_id": "m4", "type": "trip_validated", "properties": {"line": "T1"}},
        {"message_id": 5, "type": "app_opened"},
        {"message_id": "m1", "type": "app_opened", "identifiers": {"app_user_id": uid}},
        {"message_id": "m6", "type": "ticket_purchased", "identifiers": {"app_user_id": uid},
         "occurred_at": "2020-01-01T10:00:00Z", "properties": {"product": "pass", "amount": 2}},
    ]
    r = await tenant.post("/events:batch", {"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    statuses = [x["status"] for x in body["results"]]
    assert statuses == ["accepted", "rejected", "rejected", "rejected", "rejected",
                        "duplicate", "accepted"]
    fields = [x.get("field") for x in body["results"]]
    assert fields[1] == "items[1].properties.score"
    assert fields[2] == "items[2].identifiers.email"
    assert fields[3] == "items[3].identifiers"
    assert fields[4] == "items[4].message_id"
    # Replay: everything already stored is a duplicate, nothing is stored twice.
    again = (await tenant.post("/events:batch", {"items": items})).json()
    assert again["results"][0]["status"] == "duplicate"
    assert again["results"][6]["status"] == "duplicate"
    customer = body["results"][0]["customer_id"]
    timeline = (await tenant.get(f"/customers/{customer}/timeline")).json()
    assert [t["data"]["message_id"] for t in timeline["items"]] == ["m1", "m6"]


async def test_concurrent_replays_store_once(tenant):
    uid = unique("u")
    items = [{"message_id": f"c{i}", "type": "app_opened", "identifiers": {"app_user_id": uid}}
             for i in range(50)]
    responses = await asyncio.gather(*[tenant.post("/events:batch", {"items": items})
                                       for _ in range(4)])
    results = [r.json() for r in responses]
    assert sum(r["accepted"] for r in results) == 50
    assert sum(r["duplicates"] for r in results) == 150
    customers = {x["customer_id"] for r in results for x in r["results"]}
    assert len(customers) == 1


async def test_a_replay_with_a_different_body_is_rejected(tenant):
    event = {"message_id": unique("r"), "type": "nps_submitted",
             "identifiers": {"app_user_id": unique("u")},
             "occurred_at": "2026-02-01T10:00:00+01:00", "properties": {"score": 9}}
    assert (await tenant.post("/events", event)).json()["status"] == "accepted"
    same = dict(event, occurred_at="2026-02-01T09:00:00Z")  # same instant, other offset
    assert (await tenant.post("/events", same)).json()["status"] == "duplicate"
    r = await tenant.post("/events", dict(event, properties={"score": 2}))
    assert r.status_code == 422 and r.json()["field"] == "message_id"


async def test_a_replay_racing_the_first_write_falls_back_to_on_conflict(tenant, db):
    """The first write of X is still uncommitted when the batch [X, Y] checks for replays:
    the plain insert then waits, fails on X's unique key, and ON CONFLICT settles it."""
    from tenants.context import SYSTEM
    from tenants.service import tenant_context

    ctx = await tenant_context(db, tenant.id, SYSTEM)
    uid = {"app_user_id": unique("race")}
    first = (await tenant.post("/events", {"message_id": unique("r"), "type": "app_opened",
                                           "identifiers": uid})).json()
    x, y = unique("x"), unique("y")
    async with db.tenant_tx(ctx) as conn:
        await conn.execute(
            """insert into events (tenant_id, message_id, customer_id, type, occurred_at,
                                   source) values ($1, $2, $3, 'app_opened', now(), 'api')""",
            tenant.id, x, uuid.UUID(first["customer_id"]))
        batch = asyncio.create_task(tenant.post("/events:batch", {"items": [
            {"message_id": x, "type": "app_opened", "identifiers": uid},
            {"message_id": y, "type": "app_opened", "identifiers": uid}]}))
        await asyncio.sleep(0.5)  # the batch is now blocked on x's uncommitted key
        assert not batch.done()
    results = (await batch).json()["results"]
    assert [r["status"] for r in results] == ["duplicate", "accepted"]


async def test_identify_items_prepared_ahead_are_prepared_again_if_the_model_changed(tenant,
                                                                                     db):
    """A file import prepares a batch's items while the previous batch is written; the
    identify service re-checks them against the data model of its own transaction."""
    from core.events.schemas import Identifiers, IdentifyIn
    from core.events.service import PreparedIdentify, identify
    from core.model.schemas import DataSettingsUpdate
    from core.model.service import load_data_config, update_settings
    from tenants.context import SYSTEM
    from tenants.service import tenant_context

    ctx = await tenant_context(db, tenant.id, SYSTEM)
    async with db.tenant_tx(ctx) as conn:
        config = await load_data_config(conn, ctx)
    items = [IdentifyIn(identifiers=Identifiers(app_user_id=unique("p")),
                        traits={"favourite_line": "C3"})]
    prepared = PreparedIdentify(ctx, config, items)
    assert prepared.records  # accepted by the model it was prepared with
    await update_settings(db, ctx, DataSettingsUpdate(strict_traits=True))
    try:
        [result] = await identify(db, ctx, items, source="api", prepared=prepared)
        assert (result.status, result.field) == ("rejected", "items[0].traits.favourite_line")
        assert prepared.config.settings.strict_traits  # the caller sees the current model
        again = PreparedIdentify(ctx, prepared.config, items)
        [result] = await identify(db, ctx, items, source="api", prepared=again)
        assert result.status == "rejected"
    finally:
        await update_settings(db, ctx, DataSettingsUpdate(strict_traits=False))


async def test_identifiers_seen_again_refresh_last_seen_at_most_hourly(tenant, db):
    from tenants.context import SYSTEM
    from tenants.service import tenant_context

    ctx = await tenant_context(db, tenant.id, SYSTEM)
    stale, fresh = unique("stale"), unique("fresh")
    for uid in (stale, fresh):
        r = await tenant.post("/identify", {"identifiers": {"app_user_id": uid}})
        assert r.status_code == 200
    async with db.tenant_tx(ctx) as conn:
        await conn.execute(
            """update identifiers set last_seen = now() - case value when $1
                 then interval '2 hours' else interval '10 minutes' end
               where kind = 'app_user_id' and value = any($2::text[])""",
            stale, [stale, fresh])
    r = await tenant.post("/events:batch", {"items": [
        {"message_id": unique("ls"), "type": "app_opened", "identifiers": {"app_user_id": uid}}
        for uid in (stale, fresh)]})
    assert r.json()["accepted"] == 2
    async with db.tenant_tx(ctx) as conn:
        ages = dict(await conn.fetch(
            """select value, extract(epoch from now() - last_seen) from identifiers
               where kind = 'app_user_id' and value = any($1::text[])""", [stale, fresh]))
    assert ages[stale] < 60 and 500 < ages[fresh] < 700


async def test_known_customer_ids_still_follow_merges_and_refuse_erased_profiles(tenant, db):
    """A file import names the profiles it has just identified (`known_customers`): only
    what may have happened since (a merge, an erasure) is checked."""
    from core.events.schemas import EventIn
    from core.events.service import ingest_events
    from tenants.context import SYSTEM
    from tenants.service import tenant_context

    ctx = await tenant_context(db, tenant.id, SYSTEM)
    email, uid = f"{unique('k')}@laposte.net", unique("k")

    async def identify(identifiers):
        return (await tenant.post("/identify", {"identifiers": identifiers})).json()[
            "customer_id"]

    older, newer = await identify({"email": email}), await identify({"app_user_id": uid})
    assert await identify({"email": email, "app_user_id": uid}) == older
    erased, plain = await identify({"app_user_id": unique("e")}), await identify(
        {"app_user_id": unique("p")})
    assert (await tenant.post(f"/customers/{erased}/erase")).status_code == 200
    results = await ingest_events(db, ctx, [
        EventIn(message_id=unique("k"), type="app_opened", customer_id=uuid.UUID(cid))
        for cid in (newer, erased, plain)], source="import", known_customers=True)
    assert [(r.status, str(r.customer_id) if r.customer_id else r.field) for r in results] == [
        ("accepted", older), ("rejected", "items[1].customer_id"), ("accepted", plain)]
