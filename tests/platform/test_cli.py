"""The `relais` command, run as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

RELAIS = [sys.executable, "-m", "core.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    return env | extra


def test_help_documents_every_command():
    out = subprocess.run([*RELAIS, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("up", "serve", "worker", "migrate", "demo", "tenants", "keys"):
        assert command in out
    out = subprocess.run([*RELAIS, "tenants", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "create" in out and "suspend" in out


def test_errors_are_one_line_and_exit_non_zero():
    result = subprocess.run([*RELAIS, "migrate"], capture_output=True, text=True,
                            env=_env(RELAIS_DATABASE_URL="postgresql://x@127.0.0.1:1/x"))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("relais: error:")


@pytest.mark.slow
def test_up_starts_everything_embedded_and_stops_cleanly(tmp_path: Path):
    port = _free_port()
    data = tmp_path / "data"
    env = _env(RELAIS_DATA_DIR=str(data), RELAIS_PORT=str(port))
    log = tmp_path / "up.log"
    up = subprocess.Popen([*RELAIS, "up", "--demo"], env=env, stdout=subprocess.PIPE,
                          stderr=log.open("w"), text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/schema" in output, (output, log.read_text()[-3000:])
        hq_key = next(x.split(": ")[1].strip() for x in lines if "HQ admin key" in x)
        lyon_key = next(x.split(": ")[1].strip() for x in lines if "tenant lyon" in x)
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        base = f"http://127.0.0.1:{port}"
        tenants = httpx.get(f"{base}/v1/hq/tenants",
                            headers={"Authorization": f"Bearer {hq_key}"}).json()
        assert {"lyon", "casablanca", "austin"} <= {t["id"] for t in tenants["items"]}
        r = httpx.get(f"{base}/v1/tenants/austin",
                      headers={"Authorization": f"Bearer {lyon_key}"})
        assert r.status_code == 404
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, log.read_text()[-3000:]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)

    # Second start reuses the data: no new bootstrap key, demo not reloaded; this time with
    # two API processes on the port, which answer and stop with the rest.
    up = subprocess.Popen([*RELAIS, "up", "--demo", "--api-workers", "2"], env=env,
                          stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    try:
        lines = []
        while True:
            line = up.stdout.readline()
            lines.append(line)
            if line.startswith("Press Ctrl-C") or not line:
                break
        assert not any("key" in line for line in lines), lines
        deadline = time.monotonic() + 60
        answers = []
        while time.monotonic() < deadline and len(answers) < 20:
            try:
                answers.append(httpx.get(f"http://127.0.0.1:{port}/v1/hq/tenants", timeout=2,
                                         headers={"Authorization": f"Bearer {hq_key}"}))
            except httpx.TransportError:
                time.sleep(0.2)
        assert [r.status_code for r in answers] == [200] * 20, log.read_text()[-3000:]
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, log.read_text()[-3000:]
