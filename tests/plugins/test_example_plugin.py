"""The example third-party package (examples/relais-example-plugin), installed as a
distribution and found through its `relais.plugins` entry point, then used end to end:
its channel sends, its connector imports, its rule decides, its observer reacts."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import tomllib
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.connectors.sync import execute_run
from core.plugin_config import service as plugin_config
from core.plugin_config.secrets import SecretBox
from plugins.builtin.channels import OutboundMessage
from plugins.manager import ENTRY_POINT_GROUP, load_plugins
from plugins.types import EligibilityCandidate
from tenants.context import SYSTEM
from tenants.service import tenant_context
from tests.conftest import auth

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "relais-example-plugin"
TOKEN = "chat-token-never-returned-42"


def install(target: Path) -> Path:
    """Install the package the way an installer lays it out: the import package plus a
    `.dist-info` whose METADATA and entry_points.txt come from the package's own
    pyproject.toml (no network, no build backend needed)."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist = target / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (dist / "top_level.txt").write_text("relais_example_plugin\n")
    source = EXAMPLE / "src" / "relais_example_plugin"
    package = target / "relais_example_plugin"
    package.mkdir()
    for file in source.glob("*.py"):
        (package / file.name).write_text(file.read_text())
    return target


@pytest.fixture(scope="session")
def example_site(tmp_path_factory):
    site = install(tmp_path_factory.mktemp("site-packages"))
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    yield site
    sys.path.remove(str(site))
    importlib.invalidate_caches()


@pytest.fixture
async def app_plugins(example_site, client):
    """The running app's manager, rebuilt now that the package is installed (the API
    builds it at start-up, like a restart after `pip install`)."""
    state = client._transport.app.state
    state.plugins = load_plugins()
    return state.plugins


def test_the_entry_point_is_discovered_with_its_distribution_version(example_site):
    [entry] = [e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
               if e.name == "example"]
    assert entry.value == "relais_example_plugin" and entry.dist.version == "0.2.0"
    manager = load_plugins()
    registration = next(r for r in manager.registrations if r.name == "example")
    assert registration.source == "entry_point" and registration.errors == []
    assert registration.components == ["chat_webhook", "fixed_width", "sunday_rest"]
    assert manager.info("sunday_rest").kind == "rule"
    assert manager.info("chat_webhook").channel == "chat"
    assert manager.info("fixed_width").mode == "file"
    assert load_plugins(disabled=["example"]).names("rule") == []


def test_relais_plugins_list_shows_it(example_site):
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(example_site), str(ROOT)])}
    out = subprocess.run([sys.executable, "-m", "core.cli", "plugins", "list"], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    line = next(x for x in out.splitlines() if x.startswith("sunday_rest"))
    assert line.split()[:4] == ["sunday_rest", "rule", "0.2.0", "example"]
    out = subprocess.run([sys.executable, "-m", "core.cli", "plugins", "list", "--json"],
                         env=env, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    chat = next(p for p in json.loads(out) if p["name"] == "chat_webhook")
    assert chat["secret_fields"] == ["token"] and not chat["builtin"]


async def test_hq_sees_it_and_a_tenant_configures_and_sends_through_its_channel(
        app_plugins, client, db, hq_key, make_tenant, make_key):
    r = await client.get("/v1/hq/plugins/chat_webhook", headers=auth(hq_key))
    assert r.json()["info"]["package"] == "example" and r.json()["info"]["version"] == "0.2.0"
    tenant = await make_tenant("ex")
    key = await make_key(tenant.id)
    received: list[tuple[str, dict]] = []

    class Chat(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers["Authorization"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        await client.put("/v1/hq/plugins/chat_webhook", headers=auth(hq_key),
                         json={"allowed": True})
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks/relais"
        r = await client.put(f"/v1/tenants/{tenant.id}/plugins/chat_webhook",
                             headers=auth(key), json={"config": {"url": url, "token": TOKEN}})
        assert r.status_code == 200 and TOKEN not in r.text, r.text
        ctx = await tenant_context(db, tenant.id, SYSTEM)
        box = SecretBox.from_settings(client._transport.app.state.settings)
        async with db.tenant_tx(ctx) as conn:
            config = await plugin_config.require_enabled(conn, ctx, app_plugins, box,
                                                         "chat_webhook")
        sender_class = app_plugins.channel("chat_webhook").sender
        async with sender_class(config) as sender:
            result = await sender.send(OutboundMessage(
                message_id="m-1", tenant_id=tenant.id, channel="chat", to="",
                text="Line B is back to normal", category="traffic_info"))
        assert result.status == "sent"
        assert received == [(f"Bearer {TOKEN}", {
            "text": "Line B is back to normal", "username": "Relais",
            "props": {"relais_message_id": "m-1"}})]
    finally:
        server.shutdown()
        server.server_close()


async def test_its_connector_imports_and_its_observer_and_rule_react(
        app_plugins, client, db, hq_key, make_tenant, make_key):
    from relais_example_plugin import EVENTS_SEEN

    tenant = await make_tenant("ex")
    key = await make_key(tenant.id)
    for plugin, config in (("fixed_width", {}), ("sunday_rest", {"action": "delay"})):
        await client.put(f"/v1/hq/plugins/{plugin}", headers=auth(hq_key),
                         json={"allowed": True})
        r = await client.put(f"/v1/tenants/{tenant.id}/plugins/{plugin}", headers=auth(key),
                             json={"config": config})
        assert r.status_code == 200, r.text
    r = await client.post(f"/v1/tenants/{tenant.id}/connectors", headers=auth(key), json={
        "id": "legacy-ticketing", "type": "fixed_width", "name": "Mainframe export",
        "config": {"columns": {"card": [0, 10], "name": [10, 20], "product": [20, 30],
                               "amount": [30, 36]},
                   "skip_lines": 1,
                   "mapping": {"identifiers": {"ticketing_id": "card"},
                               "traits": {"first_name": "name"},
                               "event": {"type": "ticket_purchased",
                                         "properties": {"product": "product",
                                                        "amount": "amount"}}}}})
    assert r.status_code == 201, r.text
    export = ("CARD      NAME      PRODUCT   AMOUNT\n"
              "C000000001Ana       Pass mois  45.00\n"
              "C000000002Ben       Ticket      1.70\n"
              "too short\n")
    r = await client.post(f"/v1/tenants/{tenant.id}/connectors/legacy-ticketing/uploads",
                          params={"filename": "export.dat"}, content=export.encode("latin-1"),
                          headers=auth(key))
    assert r.status_code == 202, r.text
    state = client._transport.app.state
    ctx = await tenant_context(db, tenant.id, SYSTEM)
    box = SecretBox.from_settings(state.settings)
    await execute_run(db, ctx, app_plugins, box, state.settings, r.json()["id"])
    run = (await client.get(f"/v1/tenants/{tenant.id}/connectors/legacy-ticketing/runs",
                            headers=auth(key))).json()["items"][0]
    assert (run["status"], run["rows_read"], run["rows_accepted"]) == ("succeeded", 3, 2)
    assert run["error_sample"] == [{"line": 4, "reason": "line shorter than 36 characters",
                                    "field": None}]
    assert EVENTS_SEEN[(tenant.id, "ticket_purchased")] == 2
    async with db.tenant_tx(ctx) as conn:
        rules = await plugin_config.enabled_configs(conn, ctx, app_plugins, box, kind="rule")
    sunday = EligibilityCandidate(
        message_id="m-2", tenant_id=tenant.id, customer_id=uuid.uuid4(), channel="email",
        category="marketing", scheduled_at=datetime(2026, 11, 29, 15, tzinfo=UTC),
        timezone="Europe/Paris")
    verdicts = await app_plugins.check_eligibility([sunday], rules)
    assert verdicts["m-2"].action == "delay"
    assert verdicts["m-2"].until.isoformat() == "2026-11-30T09:00:00+01:00"
