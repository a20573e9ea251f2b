"""The README's five-minute tour, run as written: every `curl` of its shell block goes to the
app with the demo loaded, and answers what the tour says it answers."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from tests.platform.demo_keys import demo_keys

README = Path(__file__).resolve().parents[2] / "README.md"


def _tour() -> list[str]:
    """The tour's shell block: commands with their continuation lines joined."""
    text = README.read_text().split("## A five-minute tour", 1)[1]
    block = text.split("```sh\n", 1)[1].split("\n```", 1)[0]
    commands, current = [], ""
    for line in block.splitlines():
        if line.startswith("#") and not current:
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\") and not _open_quote(current):
            commands.append(current.strip())
            current = ""
        elif not line.endswith("\\"):
            current += "\n"
    return [c for c in commands if c]


def _open_quote(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
        return False
    except ValueError:
        return True


def _request(command: str, env: dict[str, str]) -> dict[str, Any]:
    command = command.replace('"${H[@]}"', "-H 'content-type: application/json'")
    command = re.sub(r"\$([A-Z]+)", lambda m: env[m.group(1)], command)
    args = shlex.split(command, comments=True)
    assert args[0] == "curl", command
    request: dict[str, Any] = {"method": "GET", "headers": {}}
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "-X":
            request["method"], i = args[i + 1], i + 1
        elif arg == "-H":
            name, _, value = args[i + 1].partition(": ")
            request["headers"][name] = value
            i += 1
        elif arg == "-d":
            request["content"], i = args[i + 1].encode(), i + 1
        elif not arg.startswith("-"):
            request["url"] = arg
        i += 1
    return request


async def test_the_readme_tour_runs_as_written(client, db, hq_key):
    env = {"RELAIS": "", "HQ": hq_key, "LYON": (await demo_keys(db))["lyon"]}
    commands = _tour()
    ran = 0
    for command in commands:
        if command.startswith(("export ", "H=(")):
            continue  # the tour's variables: set here, or from the answers below
        request = _request(command, env)
        r = await client.request(request.pop("method"), request.pop("url"), **request)
        ran += 1
        if "/tenants/casablanca/" in command:  # the isolation step
            assert r.status_code == 404, (command, r.text)
        elif '"nope"' in command:  # the bad-input step
            assert r.status_code == 422 and r.json()["field"] == "identifiers.email", r.text
        else:
            assert 200 <= r.status_code < 300, (command, r.status_code, r.text)
        if "customers?phone=" in command:
            env["CUSTOMER"] = r.json()["items"][0]["id"]
        if command.endswith("/tenants/lyon/campaigns -H \"Authorization: Bearer $LYON\""):
            env["CAMPAIGN"] = next(c["id"] for c in r.json()["items"]
                                   if c["name"] == "Monthly newsletter")
    assert ran == sum(c.startswith("curl") for c in commands) >= 14
    assert {"CUSTOMER", "CAMPAIGN"} <= env.keys()
