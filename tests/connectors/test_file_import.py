"""File import end to end: upload or drop a CSV / JSONL export, run it, read the run."""

from __future__ import annotations

import asyncio

import pytest

from core.connectors import sync
from core.connectors.files import tenant_dir
from core.connectors.ingest import Ingester
from tests.connectors.conftest import RESUME_NOW

TICKETING = {
    "identifiers": {"email": "Email", "ticketing_id": "Account"},
    "traits": {"first_name": "First name", "postal_code": "Zip"},
    "consents": [{"column": "Newsletter", "channel": "email", "purpose": "marketing"}],
    "event": {"type": "ticket_purchased", "id_column": "Ticket",
              "occurred_at": {"column": "Bought", "format": "%d/%m/%Y %H:%M"},
              "properties": {"product": "Product", "amount": "Amount"}},
}
HEADER = "Email,Account,First name,Zip,Newsletter,Ticket,Bought,Product,Amount\n"
CSV = HEADER + (
    "ann@tcl-lyon.fr,A-1,Ann,69001,oui,T1,02/01/2026 08:15,Pass,\"12,50\"\n"
    "bad-email,A-2,Bob,69002,non,T2,02/01/2026 09:00,Ticket,2\n"
    "cid@tcl-lyon.fr,A-3,Cid,69003,,T3,31/02/2026 10:00,Ticket,2\n"
    "dan@tcl-lyon.fr,A-4,Dan\n"
    ",,,,,T5,02/01/2026 10:00,Ticket,2\n"
    "eve@tcl-lyon.fr,A-6,Eve,69006,1,T6,03/01/2026 18:40,Pass,abc\n"
    "\"fay@tcl-lyon.fr\",A-7,\"Fay\nMarie\",69007,yes,T7,04/01/2026 07:05,Pass,30\n"
)


@pytest.fixture
async def importer(tenant, hq_key):
    await tenant.enable(hq_key, "file_import")
    await tenant.connector("ticketing", "file_import", {"mapping": TICKETING},
                           source="ticketing")
    return tenant


async def _upload(tenant, body: bytes | str, filename: str = "export.csv") -> dict:
    r = await tenant.request("POST", "/connectors/ticketing/uploads",
                             params={"filename": filename}, content=body,
                             headers={**tenant.headers, "content-type": "text/csv"})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()


async def test_csv_upload_maps_and_ingests_and_reports_bad_rows(importer):
    run = await importer.execute((await _upload(importer, CSV))["id"])
    assert run["status"] == "succeeded", run
    assert (run["rows_read"], run["rows_accepted"], run["rows_rejected"]) == (7, 2, 5)
    assert run["progress"] == 1.0
    r = await importer.request("GET", f"/connectors/ticketing/runs/{run['id']}/rejects")
    rejects = {x["line"]: x for x in r.json()["items"]}
    assert sorted(rejects) == [3, 4, 5, 6, 7]
    assert rejects[3]["field"] == "identifiers.email"
    assert "31/02/2026" in rejects[4]["reason"] and rejects[4]["field"] == "event.occurred_at"
    assert rejects[5]["reason"] == "expected 9 columns, found 3"
    assert rejects[6]["field"] == "identifiers"
    assert "abc" in rejects[7]["reason"] and rejects[7]["field"] == "event.properties.amount"
    assert [s["line"] for s in run["error_sample"]] == [3, 4, 5, 6, 7]
    events = await importer.fetch(
        "select message_id, type, properties, occurred_at, source from events "
        "where source = 'ticketing' order by message_id")
    assert [e["message_id"] for e in events] == ["ticketing:T1", "ticketing:T7"]
    assert events[0]["properties"] == {"product": "Pass", "amount": 12.5}
    assert events[0]["occurred_at"].isoformat() == "2026-01-02T07:15:00+00:00"  # Paris time
    profiles = await importer.fetch(
        "select first_name, postal_code, email from customers where email like '%@tcl-lyon.fr' "
        "order by email")
    assert [(p["first_name"], p["postal_code"]) for p in profiles] == [
        ("Ann", "69001"), ("Fay\nMarie", "69007")]
    consents = await importer.fetch(
        "select c.status, c.source, c.proof from consents c join customers p "
        "on p.id = c.customer_id where p.email = 'ann@tcl-lyon.fr' and c.channel = 'email'")
    assert [(c["status"], c["source"]) for c in consents] == [("granted", "ticketing")]
    assert consents[0]["proof"] == "ticketing import, line 2"
    ids = await importer.fetch("select kind, value from identifiers where source = 'ticketing' "
                               "order by value")
    assert ("ticketing_id", "A-1") in [(i["kind"], i["value"]) for i in ids]


async def test_reimporting_the_same_file_is_idempotent(importer):
    first = await importer.execute((await _upload(importer, CSV))["id"])
    second = await importer.execute((await _upload(importer, CSV))["id"])
    assert second["rows_accepted"] == first["rows_accepted"]
    events = await importer.fetch("select count(*) as n from events where source = 'ticketing'")
    assert events[0]["n"] == 2


async def test_jsonl_upload_reports_invalid_lines(importer):
    body = ('{"Email": "gus@tcl-lyon.fr", "Ticket": "J1", "Bought": "05/01/2026 12:00", '
            '"Product": "Pass", "Amount": 7}\n'
            "not json\n"
            "\n"
            "[1, 2]\n"
            '{"Email": "hal@tcl-lyon.fr", "First name": "Hal", "Ticket": "J2", '
            '"Bought": "05/01/2026 13:00", "Product": "Pass", "Amount": "7.5"}\n')
    run = await importer.execute((await _upload(importer, body, "forms.jsonl"))["id"])
    assert (run["rows_read"], run["rows_accepted"], run["rows_rejected"]) == (4, 2, 2)
    lines = {s["line"]: s["reason"] for s in run["error_sample"]}
    assert lines[2].startswith("invalid JSON") and lines[4] == "a line must hold a JSON object"


async def test_import_from_the_drop_directory_refuses_paths_outside_it(importer):
    inbox = tenant_dir(importer.app.state.settings, importer.id, "inbox")
    (inbox / "daily.csv").write_text(CSV)
    r = await importer.request("POST", "/connectors/ticketing/runs", json={"path": "daily.csv"})
    assert r.status_code == 202, r.text
    run = await importer.execute(r.json()["id"])
    assert run["trigger"] == "path" and run["rows_accepted"] == 2
    for bad in ("../../secret_key", "/etc/passwd"):
        r = await importer.request("POST", "/connectors/ticketing/runs", json={"path": bad})
        assert r.status_code == 422 and r.json()["field"] == "path"
    r = await importer.request("POST", "/connectors/ticketing/runs", json={"path": "none.csv"})
    assert r.status_code == 404


async def test_a_crashed_import_resumes_from_its_checkpoint(importer, monkeypatch):
    rows = "".join(f"r{i}@tcl-lyon.fr,B-{i},R{i},69000,1,K{i},06/01/2026 10:00,Pass,1\n"
                   for i in range(10))
    run_id = (await _upload(importer, HEADER + rows))["id"]
    monkeypatch.setattr(sync, "BATCH_SIZE", 3)
    calls = 0
    real = Ingester.identify_batch

    async def crash_on_third_batch(self, records):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise asyncio.CancelledError  # the worker is killed mid-run
        return await real(self, records)

    # Batch 2 is being stored while batch 3 is identified: it still commits its checkpoint.
    monkeypatch.setattr(Ingester, "identify_batch", crash_on_third_batch)
    with pytest.raises(asyncio.CancelledError):
        await importer.execute(run_id)
    crashed = await importer.run(run_id)
    assert crashed["status"] == "running" and crashed["rows_read"] == 6
    # Another worker takes the run over once its heartbeat is stale.
    assert (await importer.execute(run_id))["status"] == "running"  # heartbeat still fresh
    done = await importer.execute(run_id, stale_after=RESUME_NOW)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert (done["rows_read"], done["rows_accepted"], done["rows_rejected"]) == (10, 10, 0)
    assert calls == 3 + 2  # batches 3 and 4 only: the first two were not read again
    events = await importer.fetch(
        "select count(*) as n from events where message_id like 'ticketing:K%'")
    assert events[0]["n"] == 10
    # The uploaded file is removed once its run succeeded.
    assert not list(tenant_dir(importer.app.state.settings, importer.id, "uploads")
                    .glob(f"{run_id}*"))


async def test_upload_limits_and_wrong_connectors(importer, hq_key):
    r = await importer.request("POST", "/connectors/ticketing/uploads", content=b"",
                               headers={**importer.headers, "content-type": "text/csv"})
    assert r.status_code == 422 and r.json()["field"] == "body"
    await importer.client.put("/v1/hq/plugins/file_import", headers={
        "Authorization": f"Bearer {hq_key}"}, json={"allowed": True,
                                                    "default_config": {"max_file_mb": 1},
                                                    "locked": ["max_file_mb"]})
    r = await importer.request("POST", "/connectors/ticketing/uploads",
                               content=b"x" * (1 << 20) + b"x",
                               headers={**importer.headers, "content-type": "text/csv"})
    assert r.status_code == 413
    await importer.client.put("/v1/hq/plugins/file_import", headers={
        "Authorization": f"Bearer {hq_key}"}, json={"allowed": True})
    r = await importer.request("POST", "/connectors/nope/uploads", content=CSV)
    assert r.status_code == 404

