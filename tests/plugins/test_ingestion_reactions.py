"""`relais_event_ingested` and `relais_customers_merged` through every path that ingests:
the API routes, imports, connectors. One call per service call with exactly what was
newly stored or merged; nothing for replays; nothing for a tenant that did not enable the
plugin; a failing plugin never fails ingestion."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from core.events.jobs import run_import
from core.events.reactions import NOBODY, Reactions
from plugins import hookspecs
from plugins.manager import load_plugins
from tenants.context import SYSTEM
from tenants.service import tenant_context
from tests.conftest import auth
from tests.connectors.conftest import Tenant as ConnectorTenant
from tests.plugins.recorder import Recorder, enable, installed


class Net:
    def __init__(self, client, tenant_id: str, key: str) -> None:
        self.client, self.id, self.key = client, tenant_id, key

    async def post(self, path: str, body: object, status: int = 200):
        r = await self.client.post(f"/v1/tenants/{self.id}{path}", json=body,
                                   headers=auth(self.key))
        assert r.status_code == status, r.text
        return r.json()

    async def get(self, path: str):
        r = await self.client.get(f"/v1/tenants/{self.id}{path}", headers=auth(self.key))
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
async def recorder(app):
    plugin = Recorder()
    with installed(app, ("recorder", plugin)):
        yield plugin


@pytest.fixture
async def net(client, hq_key, make_tenant, make_key, recorder) -> Net:
    """A tenant that enabled the recorder."""
    tenant = await make_tenant("rx")
    key = await make_key(tenant.id)
    await enable(client, hq_key, tenant.id, key)
    return Net(client, tenant.id, key)


@pytest.fixture
async def other(client, make_tenant, make_key, recorder) -> Net:
    """A tenant that did not enable it (HQ allows it all the same)."""
    tenant = await make_tenant("rx")
    return Net(client, tenant.id, await make_key(tenant.id))


def _event(message_id: str, email: str, **extra: object) -> dict:
    return {"message_id": message_id, "type": "app_opened",
            "identifiers": {"email": email}, **extra}


async def test_events_batch_tells_exactly_the_new_events_once_and_nothing_on_replay(
        net, recorder):
    at = "2026-11-20T07:42:10+01:00"
    batch = {"items": [
        _event("e-1", "ana@tcl.fr", occurred_at=at, properties={"screen": "home"}),
        _event("e-2", "ben@tcl.fr"),
        {"message_id": "e-3", "type": "app_opened", "identifiers": {"email": "null"}},
        _event("e-1", "ana@tcl.fr", occurred_at=at, properties={"screen": "home"})]}
    answer = await net.post("/events:batch", batch)
    assert [r["status"] for r in answer["results"]] == [
        "accepted", "accepted", "rejected", "duplicate"]
    events, merges = recorder.calls(net.id)
    assert merges == [] and len(events) == 1  # one call for the batch
    [first, second] = events[0]
    assert (first.message_id, first.type, first.source) == ("e-1", "app_opened", "api")
    assert first.customer_id == uuid.UUID(answer["results"][0]["customer_id"])
    assert first.occurred_at == datetime.fromisoformat(at)
    assert first.properties == {"screen": "home"}
    assert second.message_id == "e-2"
    assert second.customer_id == uuid.UUID(answer["results"][1]["customer_id"])
    stored = await net.get("/events/e-2")
    assert second.occurred_at == datetime.fromisoformat(stored["occurred_at"])

    recorder.clear()
    answer = await net.post("/events:batch", {"items": batch["items"][:2]})
    assert [r["status"] for r in answer["results"]] == ["duplicate", "duplicate"]
    assert recorder.calls(net.id) == ([], [])
    # Half replayed: only the new one.
    answer = await net.post("/events:batch?source=app",
                            {"items": [_event("e-2", "ben@tcl.fr"), _event("e-4", "ben@tcl.fr")]})
    assert [r["status"] for r in answer["results"]] == ["duplicate", "accepted"]
    events, _ = recorder.calls(net.id)
    assert [[(e.message_id, e.source) for e in batch] for batch in events] == [[("e-4", "app")]]


async def test_single_event_and_identify_tell_what_they_stored(net, recorder):
    r = await net.client.put(f"/v1/tenants/{net.id}/model/settings", headers=auth(net.key),
                             json={"unknown_events": "quarantine"})
    assert r.status_code == 200, r.text
    await net.post("/events", _event("s-1", "cid@tcl.fr"))
    await net.post("/events", _event("s-1", "cid@tcl.fr"))  # replay
    quarantined = await net.post("/events", {"message_id": "s-2", "type": "teleported",
                                             "identifiers": {"email": "cid@tcl.fr"}})
    assert quarantined["status"] == "quarantined"
    # identify without a message_id stores no event; with one, an `identify` event.
    await net.post("/identify", {"identifiers": {"email": "cid@tcl.fr"},
                                 "traits": {"first_name": "Cid"}})
    done = await net.post("/identify", {"identifiers": {"email": "cid@tcl.fr"},
                                        "traits": {"last_name": "Roux"}, "message_id": "i-1"})
    await net.post("/identify", {"identifiers": {"email": "cid@tcl.fr"},
                                 "traits": {"last_name": "Roux"}, "message_id": "i-1"})
    events, merges = recorder.calls(net.id)
    assert [[(e.message_id, e.type) for e in batch] for batch in events] == [
        [("s-1", "app_opened")], [("i-1", "identify")]]
    assert events[1][0].customer_id == uuid.UUID(done["customer_id"])
    assert merges == []


async def test_merges_are_told_once_per_call_with_what_the_history_records(net, recorder):
    older = (await net.post("/identify", {"identifiers": {"email": "dan@tcl.fr"}}))
    newer = (await net.post("/identify", {"identifiers": {"phone": "+33611000001"}}))
    linked = await net.post("/identify", {
        "identifiers": {"email": "dan@tcl.fr", "phone": "+33611000001"}, "message_id": "m-1"})
    assert linked["customer_id"] == older["customer_id"]
    history = (await net.get(f"/customers/{older['customer_id']}/merges"))["items"]
    events, merges = recorder.calls(net.id)
    assert len(merges) == 1 and len(merges[0]) == 1
    [merge] = merges[0]
    assert str(merge.survivor_id) == older["customer_id"] == history[0]["survivor_id"]
    assert str(merge.merged_id) == newer["customer_id"] == history[0]["merged_id"]
    assert merge.reason == history[0]["reason"]
    assert [[(e.message_id, str(e.customer_id)) for e in b] for b in events] == [
        [("m-1", older["customer_id"])]]

    recorder.clear()  # a replay merges nothing more
    again = await net.post("/identify", {
        "identifiers": {"email": "dan@tcl.fr", "phone": "+33611000001"}, "message_id": "m-1"})
    assert again["status"] == "duplicate"
    assert recorder.calls(net.id) == ([], [])

    # Two merges in one batch: one call holding both.
    pairs = [("eve@tcl.fr", "+33611000002"), ("fay@tcl.fr", "+33611000003")]
    for email, phone in pairs:
        await net.post("/identify", {"identifiers": {"email": email}})
        await net.post("/identify", {"identifiers": {"phone": phone}})
    recorder.clear()
    answer = await net.post("/identify:batch", {"items": [
        {"identifiers": {"email": email, "phone": phone}} for email, phone in pairs]})
    assert answer["accepted"] == 2
    events, merges = recorder.calls(net.id)
    assert events == [] and len(merges) == 1
    assert sorted(str(m.survivor_id) for m in merges[0]) == sorted(
        r["customer_id"] for r in answer["results"])


async def test_a_tenant_that_did_not_enable_the_plugin_tells_it_nothing(net, other, recorder):
    await other.post("/identify", {"identifiers": {"email": "gus@tcl.fr"}})
    await other.post("/identify", {"identifiers": {"phone": "+33611000004"}})
    await other.post("/events:batch", {"items": [
        _event("o-1", "gus@tcl.fr"),
        {"message_id": "o-2", "type": "app_opened",
         "identifiers": {"email": "gus@tcl.fr", "phone": "+33611000004"}}]})
    assert (await other.get("/events/o-2"))["customer_id"]
    assert recorder.events == [] and recorder.merges == []
    # The same traffic for the tenant that enabled it is told (the plugin does work).
    await net.post("/events", _event("o-1", "gus@tcl.fr"))
    assert [t for t, _ in recorder.events] == [net.id]
    # Disabled again: silence.
    r = await net.client.put(f"/v1/tenants/{net.id}/plugins/test_recorder",
                             headers=auth(net.key), json={"enabled": False, "config": {}})
    assert r.status_code == 200, r.text
    await net.post("/events", _event("o-9", "gus@tcl.fr"))
    assert [t for t, _ in recorder.events] == [net.id]


async def test_a_failing_plugin_never_fails_ingestion(app, client, make_tenant, make_key):
    class Broken:  # an observer: hears every tenant
        @hookspecs.hookimpl
        def relais_event_ingested(self, events):
            raise RuntimeError("bug in an observer")

    tenant = await make_tenant("rx")
    net = Net(client, tenant.id, await make_key(tenant.id))
    with installed(app, ("broken", Broken())):
        answer = await net.post("/events:batch", {"items": [_event("b-1", "hal@tcl.fr")]})
    assert answer["accepted"] == 1


async def test_imports_tell_chunk_by_chunk(net, recorder, app, db):
    items = [_event(f"im-{i}", f"u{i}@tcl.fr") for i in range(3)]
    job = await net.post("/imports", {"kind": "events", "items": items, "source": "crm"},
                         status=202)
    state = app.state
    worker = {"db": db, "settings": state.settings, "plugins": state.plugins}
    assert await run_import(worker, net.id, job["id"]) == 3
    events, _ = recorder.calls(net.id)
    assert [[(e.message_id, e.source) for e in b] for b in events] == [
        [(f"im-{i}", "crm") for i in range(3)]]


async def test_connector_runs_tell_their_merges_and_events(net, recorder, app, hq_key):
    older = await net.post("/identify", {"identifiers": {"email": "ivy@tcl.fr"}})
    newer = await net.post("/identify", {"identifiers": {"phone": "+33611000005"}})
    ctx = await tenant_context(db := app.state.db, net.id, SYSTEM)
    tenant = ConnectorTenant(id=net.id, key=net.key, ctx=ctx, client=net.client, app=app)
    await tenant.enable(hq_key, "file_import")
    await tenant.connector("crm", "file_import", {"mapping": {
        "identifiers": {"email": "Email", "phone": "Phone"},
        "traits": {"first_name": "Name"},
        "event": {"type": "app_opened", "id_column": "Id"}}}, source="crm")
    recorder.clear()
    csv = "Email,Phone,Name,Id\nivy@tcl.fr,+33611000005,Ivy,c-1\n"
    r = await tenant.request("POST", "/connectors/crm/uploads", params={"filename": "a.csv"},
                             content=csv.encode(), headers={"content-type": "text/csv"})
    assert r.status_code == 202, r.text
    run = await tenant.execute(r.json()["id"])
    assert (run["status"], run["rows_accepted"]) == ("succeeded", 1), run
    events, merges = recorder.calls(net.id)
    assert [[(str(m.survivor_id), str(m.merged_id)) for m in b] for b in merges] == [
        [(older["customer_id"], newer["customer_id"])]]
    assert [[(e.message_id, e.source, str(e.customer_id)) for e in b] for b in events] == [
        [("crm:c-1", "crm", older["customer_id"])]]
    async with db.tenant_tx(ctx) as conn:
        assert await conn.fetchval("select count(*) from customer_merges") == 1


async def test_nobody_listening_means_no_lookup_at_all(db, make_tenant, settings):
    """No plugin implements the hooks, or only observers do: the enabled plugins are not
    even read (no connection is needed to decide)."""
    ctx = await tenant_context(db, (await make_tenant("rx")).id, SYSTEM)
    builtins_only = load_plugins(entry_points=False)
    assert await Reactions(builtins_only).listeners(None, ctx) is NOBODY  # type: ignore[arg-type]

    class Observer:
        @hookspecs.hookimpl
        def relais_customers_merged(self, merges):
            pass

    observers = load_plugins(entry_points=False, extra=[("observer", Observer())])
    heard = await Reactions(observers).listeners(None, ctx)  # type: ignore[arg-type]
    assert (heard.events, heard.merges, heard.enabled) == (False, True, ())
    # A plugin with components: the tenant's enabled plugins decide (none here).
    gated = load_plugins(entry_points=False, extra=[("recorder", Recorder())])
    async with db.tenant_tx(ctx) as conn:
        assert await Reactions(gated, settings=settings).listeners(conn, ctx) is NOBODY
