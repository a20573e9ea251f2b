"""Inbound webhook source: HMAC-signed deliveries mapped like any import."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from plugins.builtin.channels.webhook import sign

SECRET = "whsec-form-tool-0123456789"
MAPPING = {"identifiers": {"email": "contact.email"},
           "traits": {"first_name": "contact.first_name"},
           "event": {"type": "form_submitted", "id_column": "submission_id",
                     "occurred_at": "submitted_at",
                     "properties": {"form_id": "form"}}}


@pytest.fixture
async def hook(tenant, hq_key):
    await tenant.enable(hq_key, "webhook_source")
    created = await tenant.connector("forms", "webhook_source", {
        "mapping": MAPPING, "signing_secret": SECRET, "items_path": "submissions"})
    assert created["webhook_url"].endswith(f"/hooks/{tenant.id}/forms")
    assert created["secrets_set"] == ["signing_secret"]
    assert SECRET not in json.dumps(created)
    return tenant


def _body(*submissions: dict) -> bytes:
    return json.dumps({"submissions": list(submissions)}).encode()


def _submission(n: int, email: str = "", **extra) -> dict:
    return {"submission_id": f"S{n}", "form": "claim", "submitted_at": "2026-03-01T10:00:00Z",
            "contact": {"email": email or f"p{n}@keolis-rennes.fr", "first_name": f"P{n}"}
            } | extra


async def _post(tenant, body: bytes, signature: str | None, connector: str = "forms",
                header: str = "X-Relais-Signature"):
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers[header] = signature
    return await tenant.client.post(f"/hooks/{tenant.id}/{connector}", content=body,
                                    headers=headers)


async def test_signed_delivery_is_ingested_with_a_result_per_item(hook):
    body = _body(_submission(1), _submission(2, email="not-an-email"),
                 _submission(3, submitted_at="yesterday"))
    r = await _post(hook, body, sign(SECRET, body, int(time.time())))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["received"], answer["accepted"], answer["rejected"]) == (3, 1, 2)
    assert [i["status"] for i in answer["items"]] == ["accepted", "rejected", "rejected"]
    assert answer["items"][1]["field"] == "identifiers.email"
    assert answer["items"][2]["field"] == "event.occurred_at"
    events = await hook.fetch("select message_id from events where source = 'forms'")
    assert [e["message_id"] for e in events] == ["forms:S1"]
    # A second delivery counts into the same hourly run, with its own line numbers.
    body = _body(_submission(4, email="bad"))
    r = await _post(hook, body, sign(SECRET, body, int(time.time())))
    run = await hook.run(answer["run_id"])
    assert run["trigger"] == "webhook" and r.json()["run_id"] == run["id"]
    assert (run["rows_read"], run["rows_accepted"], run["rows_rejected"]) == (4, 1, 3)
    rejects = await hook.request("GET", f"/connectors/forms/runs/{run['id']}/rejects")
    assert [x["line"] for x in rejects.json()["items"]] == [2, 3, 4]


async def test_bad_signatures_stale_timestamps_and_unknown_connectors_get_401(hook):
    body = _body(_submission(5))
    now = int(time.time())
    for signature in (None, "t=1,v1=00", sign("another-secret-0123456", body, now),
                      sign(SECRET, body, now - 3600)):
        r = await _post(hook, body, signature)
        assert r.status_code == 401, signature
    r = await _post(hook, body, sign(SECRET, body, now), connector="nope")
    assert r.status_code == 401
    r = await hook.client.post("/hooks/no-such-tenant/forms", content=body,
                               headers={"X-Relais-Signature": sign(SECRET, body, now)})
    assert r.status_code == 401
    assert not await hook.fetch("select 1 from events where message_id = 'forms:S5'")


async def test_sha256_scheme_and_single_object_bodies(hook):
    r = await hook.request("PATCH", "/connectors/forms", json={"config": {
        "mapping": MAPPING, "scheme": "sha256", "signature_header": "X-Hub-Signature-256"}})
    assert r.status_code == 200, r.text
    assert r.json()["secrets_set"] == ["signing_secret"]  # kept: left out of the update
    body = json.dumps(_submission(6)).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = await _post(hook, body, f"sha256={digest}", header="X-Hub-Signature-256")
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    r = await _post(hook, body, "sha256=" + "0" * 64, header="X-Hub-Signature-256")
    assert r.status_code == 401


async def test_paused_connector_refuses_deliveries(hook):
    await hook.request("PATCH", "/connectors/forms", json={"status": "paused"})
    body = _body(_submission(7))
    r = await _post(hook, body, sign(SECRET, body, int(time.time())))
    assert r.status_code == 401
