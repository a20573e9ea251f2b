"""The issue's "done when", over HTTP with a real arq worker: HQ allows the connectors, a
tenant enables them, imports a ticketing CSV, receives webhooks, watches its runs and reads
its collection plan."""

from __future__ import annotations

import json
import time

from core.jobs.worker import build_worker
from plugins.builtin.channels.webhook import sign
from tests.conftest import auth

CSV = ("Email;Carte;Prenom;Billet;Date;Produit;Montant\n"
       "lea@reseau-tisseo.fr;TIS-001;Léa;B1;2026-11-02T08:00:00;Pass mois;55,00\n"
       "sans-arobase;TIS-002;Max;B2;2026-11-02T09:00:00;Ticket;1,80\n"
       "noe@reseau-tisseo.fr;TIS-003;Noé;B3;2026-11-02T10:00:00;Ticket;1,80\n")
SECRET = "tisseo-forms-signing-secret"


async def test_enable_import_receive_watch_and_plan(client, hq_key, make_tenant, make_key,
                                                    settings):
    tenant = await make_tenant("e2e")
    key = await make_key(tenant.id, ["plugins:write", "connectors:write", "model:read"])
    base = f"/v1/tenants/{tenant.id}"
    for plugin in ("file_import", "webhook_source"):
        r = await client.put(f"/v1/hq/plugins/{plugin}", headers=auth(hq_key),
                             json={"allowed": True})
        assert r.status_code == 200, r.text
        r = await client.put(f"{base}/plugins/{plugin}", headers=auth(key),
                             json={"config": {}})
        assert r.status_code == 200, r.text
    r = await client.post(f"{base}/connectors", headers=auth(key), json={
        "id": "billettique", "type": "file_import", "name": "Export billettique",
        "source": "ticketing", "config": {"delimiter": ";", "mapping": {
            "identifiers": {"email": "Email", "ticketing_id": "Carte"},
            "traits": {"first_name": "Prenom"},
            "event": {"type": "ticket_purchased", "id_column": "Billet",
                      "occurred_at": "Date",
                      "properties": {"product": "Produit", "amount": "Montant"}}}}})
    assert r.status_code == 201, r.text
    r = await client.post(f"{base}/connectors", headers=auth(key), json={
        "id": "formulaires", "type": "webhook_source", "name": "Formulaires",
        "config": {"signing_secret": SECRET, "mapping": {
            "identifiers": {"email": "email"},
            "event": {"type": "nps_submitted", "id_column": "id",
                      "properties": {"score": "score"}}}}})
    assert r.status_code == 201, r.text
    webhook_url = r.json()["webhook_url"]

    r = await client.post(f"{base}/connectors/billettique/uploads", headers=auth(key),
                          params={"filename": "billets.csv"}, content=CSV.encode())
    assert r.status_code == 202, r.text
    worker = build_worker(settings, burst=True, poll_delay=0.05, cron_jobs=[])
    await worker.main()
    await worker.close()

    runs = (await client.get(f"{base}/connectors/billettique/runs",
                             headers=auth(key))).json()["items"]
    assert [(r["status"], r["rows_read"], r["rows_accepted"], r["rows_rejected"])
            for r in runs] == [("succeeded", 3, 2, 1)]
    assert runs[0]["error_sample"][0]["line"] == 3

    body = json.dumps({"id": "F1", "email": "lea@reseau-tisseo.fr", "score": 4}).encode()
    path = webhook_url.removeprefix(settings.base_url)
    r = await client.post(path, content=body,
                          headers={"X-Relais-Signature": sign(SECRET, body, int(time.time()))})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text

    plan = (await client.get(f"{base}/collection-plan", headers=auth(key))).json()
    items = {(i["kind"], i["name"]): i for i in plan["items"]}
    assert plan["profiles"] == 2
    assert items[("event", "ticket_purchased")]["sources"] == ["ticketing"]
    assert items[("event", "nps_submitted")]["connectors"] == ["formulaires"]
    assert items[("event", "nps_submitted")]["fill_rate"] == 0.5
    assert items[("identifier", "ticketing_id")]["fill_rate"] == 1.0
