"""Pull connector against a local paginated JSON API: checkpoints, crash and resume,
incremental syncs, scheduling."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from core.connectors.ingest import Ingester
from core.connectors.jobs import schedule_connector_syncs
from core.jobs.context import job_id
from tests.connectors.conftest import RESUME_NOW

TOKEN = "pull-api-token-0123456789"
MAPPING = {"identifiers": {"loyalty_id": "member_id", "email": "email"},
           "traits": {"first_name": "first_name"},
           "event": {"type": "loyalty_points_earned", "id_column": "entry_id",
                     "occurred_at": "updated_at", "properties": {"points": "points"}}}


class LoyaltyApi:
    """`GET /members?limit=&cursor=&updated_since=`: records sorted by update time."""

    def __init__(self, count: int) -> None:
        self.records = [self.member(i, f"2026-02-01T10:{i:02d}:00+00:00") for i in range(count)]
        self.requests: list[dict[str, str]] = []
        self.fail_at: str | None = None  # a cursor answered with HTTP 500
        self.seen_tokens: set[str] = set()

    @staticmethod
    def member(i: int, updated_at: str, points: int = 10) -> dict:
        return {"member_id": f"L{i:04d}", "email": f"m{i}@loyalty-bordeaux.fr",
                "first_name": f"M{i}", "entry_id": f"E{i}-{updated_at}", "points": points,
                "updated_at": updated_at}

    def page(self, query: dict[str, str]) -> tuple[int, dict]:
        self.requests.append(query)
        if query.get("cursor") == self.fail_at and self.fail_at is not None:
            self.fail_at = None
            return 500, {"error": "database is down"}
        since = query.get("updated_since")
        rows = [r for r in self.records if since is None or r["updated_at"] > since]
        start, size = int(query.get("cursor") or 0), int(query["limit"])
        nxt = start + size
        return 200, {"items": rows[start:nxt],
                     "next_cursor": str(nxt) if nxt < len(rows) else None}


@pytest.fixture
def api() -> Iterator[tuple[LoyaltyApi, str]]:
    source = LoyaltyApi(25)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            source.seen_tokens.add(self.headers.get("Authorization", ""))
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            status, body = source.page(query)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield source, f"http://127.0.0.1:{server.server_address[1]}/members"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def puller(tenant, hq_key, api):
    source, url = api
    await tenant.enable(hq_key, "rest_pull", default_config={"allowed_hosts": ["127.0.0.1"]},
                        locked=["allowed_hosts"])
    await tenant.connector("loyalty", "rest_pull", {
        "mapping": MAPPING, "url": url, "page_size": 10, "token": TOKEN})
    return tenant, source


async def _sync(tenant, full: bool = False) -> str:
    r = await tenant.request("POST", "/connectors/loyalty/runs", json={"full": full})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _cursors(source: LoyaltyApi) -> list[str | None]:
    return [q.get("cursor") for q in source.requests]


async def test_a_failed_sync_resumes_from_the_last_ingested_page(puller, caplog):
    tenant, source = puller
    source.fail_at = "20"
    with caplog.at_level(logging.DEBUG):
        failed = await tenant.execute(await _sync(tenant))
    assert "connector run failed" in caplog.text and TOKEN not in caplog.text
    assert failed["status"] == "failed" and "HTTP 500" in failed["error"]
    assert failed["rows_read"] == 20 and _cursors(source) == [None, "10", "20"]
    connector = (await tenant.request("GET", "/connectors/loyalty")).json()
    assert connector["checkpoint"]["cursor"] == "20"
    assert TOKEN not in json.dumps(connector) and connector["secrets_set"] == ["token"]
    assert source.seen_tokens == {f"Bearer {TOKEN}"}
    resumed = await tenant.execute(await _sync(tenant))
    assert resumed["status"] == "succeeded" and resumed["rows_read"] == 5
    assert _cursors(source)[3:] == ["20"]  # pages 1 and 2 were not fetched again
    count = await tenant.fetch("select count(*) as n from events where source = 'loyalty'")
    assert count[0]["n"] == 25


async def test_a_crashed_sync_is_taken_over_and_resumed(puller, monkeypatch):
    tenant, source = puller
    calls = 0
    real = Ingester.ingest

    async def killed_on_second_page(self, records):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise asyncio.CancelledError
        return await real(self, records)

    monkeypatch.setattr(Ingester, "ingest", killed_on_second_page)
    run_id = await _sync(tenant)
    with pytest.raises(asyncio.CancelledError):
        await tenant.execute(run_id)
    assert (await tenant.run(run_id))["status"] == "running"
    # A second sync may not start while this one is unfinished.
    r = await tenant.request("POST", "/connectors/loyalty/runs", json={})
    assert r.status_code == 409
    done = await tenant.execute(run_id, stale_after=RESUME_NOW)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert done["rows_read"] == 25
    assert _cursors(source) == [None, "10", "10", "20"]  # page 2 fetched again, not page 1


async def test_next_sync_asks_only_for_records_updated_since(puller):
    tenant, source = puller
    await tenant.execute(await _sync(tenant))
    source.records.append(LoyaltyApi.member(3, "2026-02-02T09:00:00+00:00", points=50))
    source.requests.clear()
    run = await tenant.execute(await _sync(tenant))
    assert run["rows_read"] == 1
    assert source.requests[0]["updated_since"] == "2026-02-01T10:24:00+00:00"
    points = await tenant.fetch(
        "select properties->>'points' as p from events where source = 'loyalty' "
        "and message_id like 'loyalty:E3-%' order by occurred_at")
    assert [p["p"] for p in points] == ["10", "50"]
    source.requests.clear()
    full = await tenant.execute(await _sync(tenant, full=True))
    assert full["rows_read"] == 26 and "updated_since" not in source.requests[0]


async def test_hq_allowed_hosts_bound_where_a_connector_may_pull_from(puller, hq_key):
    tenant, _ = puller
    r = await tenant.request("PUT", "/plugins/rest_pull",
                             json={"config": {"allowed_hosts": ["*"]}})
    assert r.status_code == 422 and r.json()["field"] == "config.allowed_hosts"
    await tenant.client.put("/v1/hq/plugins/rest_pull", headers={
        "Authorization": f"Bearer {hq_key}"}, json={
        "allowed": True, "default_config": {"allowed_hosts": ["api.group.example"]},
        "locked": ["allowed_hosts"]})
    run = await tenant.execute(await _sync(tenant))
    assert run["status"] == "failed" and "allowed hosts" in run["error"]


async def test_the_scheduler_starts_due_syncs_once(puller):
    tenant, _ = puller
    r = await tenant.request("PATCH", "/connectors/loyalty", json={"schedule_minutes": 2})
    assert r.status_code == 422 and r.json()["field"] == "schedule_minutes"  # min 5
    r = await tenant.request("PATCH", "/connectors/loyalty", json={"schedule_minutes": 15})
    assert r.status_code == 200, r.text
    state = tenant.app.state
    job_ctx = {"db": state.db, "settings": state.settings, "redis": state.arq,
               "plugins": state.plugins}
    soon = datetime.now(UTC) + timedelta(minutes=1)
    await schedule_connector_syncs(job_ctx, now=soon)
    runs = (await tenant.request("GET", "/connectors/loyalty/runs")).json()["items"]
    assert [(r["trigger"], r["status"]) for r in runs] == [("schedule", "queued")]
    queued = {j.job_id for j in await state.arq.queued_jobs(queue_name=state.settings.queue_name)}
    assert job_id(state.settings, "run_connector", tenant.id, runs[0]["id"]) in queued
    await schedule_connector_syncs(job_ctx, now=soon)  # not due again, and a run is open
    assert len((await tenant.request("GET", "/connectors/loyalty/runs")).json()["items"]) == 1
    done = await tenant.execute(runs[0]["id"])
    assert done["status"] == "succeeded"
    connector = (await tenant.request("GET", "/connectors/loyalty")).json()
    assert datetime.fromisoformat(connector["next_run_at"]) > soon

