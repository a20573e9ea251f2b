"""The HTTP plumbing under FakeProviders: stdlib server, keep-alive, request recording."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .provider_errors import Canned

__all__ = ["RecordedRequest", "make_handler"]


@dataclass(frozen=True)
class RecordedRequest:
    route: str  # "twilio" | "gateway" | "whatsapp" | "fcm" | "webhook" | "unknown"
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


def make_handler(
    routes: list[tuple[str, re.Pattern[str]]],
    on_connect: Callable[[], None],
    respond: Callable[[RecordedRequest, re.Match[str] | None], Canned],
) -> type[BaseHTTPRequestHandler]:
    """A keep-alive request handler that records each request and lets `respond` answer."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable
        disable_nagle_algorithm = True  # headers and body go out in separate writes
        timeout = 10  # idle keep-alive threads end on their own

        def setup(self) -> None:
            super().setup()
            on_connect()

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            route, match = "unknown", None
            for name, pattern in routes:
                if m := pattern.match(split.path):
                    route, match = name, m
                    break
            req = RecordedRequest(
                route=route,
                method=self.command,
                path=split.path,
                query={k: v[0] for k, v in parse_qs(split.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            try:
                answer = respond(req, match)
            except (ValueError, KeyError, AttributeError) as exc:  # unparsable payload
                answer = Canned(400, {"error": f"bad request: {exc}"})
            payload = answer.body
            raw = (
                payload
                if isinstance(payload, bytes)
                else (b"" if payload is None else json.dumps(payload).encode())
            )
            self.send_response(answer.status)
            if payload is not None and not isinstance(payload, bytes):
                self.send_header("Content-Type", "application/json")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = _serve

    return Handler
