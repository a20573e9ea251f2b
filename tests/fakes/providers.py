"""One local HTTP server speaking the provider APIs the channel senders use.

Twilio Messages, a generic SMS gateway, WhatsApp Cloud messages, FCM v1 send and a signed
webhook receiver, on 127.0.0.1 and a free port, in a thread. It records every request,
checks credentials like the real APIs (401), validates payload shapes, and answers canned
errors programmed per recipient (phone number, device token, webhook name).

    with FakeProviders() as fake:
        fake.program("+15005550001", twilio_error(21211))
        ...  # point senders at fake.url
        assert fake.requests_for("twilio")[0].form()["To"] == "+15005550001"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from .http_server import RecordedRequest, make_handler
from .provider_errors import Canned, fcm_error, graph_error, http_status, twilio_error

__all__ = [
    "Canned",
    "FakeProviders",
    "RecordedRequest",
    "fcm_error",
    "graph_error",
    "http_status",
    "twilio_error",
]

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("twilio", re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")),
    ("gateway", re.compile(r"^/gateway/sms$")),
    ("whatsapp", re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<phone_id>[^/]+)/messages$")),
    ("fcm", re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")),
    ("webhook", re.compile(r"^/webhooks/(?P<name>[^/]+)$")),
]


class FakeProviders:
    def __init__(
        self,
        *,
        twilio_sid: str = "AC" + "0" * 32,
        twilio_token: str = "twilio-token",
        gateway_token: str = "gateway-token",
        whatsapp_token: str = "whatsapp-token",
        whatsapp_phone_number_id: str = "1234567890",
        fcm_token: str = "fcm-access-token",
        fcm_project: str = "relais-test",
        webhook_secret: str = "whsec-test",
    ) -> None:
        self.twilio_sid, self.twilio_token = twilio_sid, twilio_token
        self.gateway_token = gateway_token
        self.whatsapp_token, self.whatsapp_phone_number_id = (
            whatsapp_token,
            whatsapp_phone_number_id,
        )
        self.fcm_token, self.fcm_project = fcm_token, fcm_project
        self.webhook_secret = webhook_secret
        self.connections = 0
        self._requests: list[RecordedRequest] = []
        self._programs: dict[str, list[Canned]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        self._server = ThreadingHTTPServer(
            ("127.0.0.1", 0), make_handler(ROUTES, self._on_connect, self._respond)
        )
        self._server.daemon_threads = True
        # A short poll keeps stop() fast (shutdown waits for the next poll); idle cost is nil.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def gateway_url(self) -> str:
        return f"{self.url}/gateway/sms"

    def webhook_url(self, name: str = "default") -> str:
        return f"{self.url}/webhooks/{name}"

    # -- programming and inspection --------------------------------------------------------
    def program(self, key: str, *answers: Canned) -> None:
        """Answer requests for `key` (To number, device token or webhook name) with
        `answers`, in order; each is used `times` times (None: forever)."""
        with self._lock:  # copies: `times` counts down, shared Canned must not
            self._programs.setdefault(key, []).extend(replace(a) for a in answers)

    def program_route(self, route: str, *answers: Canned) -> None:
        """Like `program`, for every request of a route ("twilio", "gateway", "whatsapp",
        "fcm", "webhook") that has no per-recipient program: a provider-wide outage."""
        self.program(f"route:{route}", *answers)

    def reset(self) -> None:
        with self._lock:
            self._programs.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]

    def _on_connect(self) -> None:
        with self._lock:
            self.connections += 1

    def _respond(self, request: RecordedRequest, match: re.Match[str] | None) -> Canned:
        with self._lock:
            self._requests.append(request)
        if match is None:
            return Canned(404, {"error": "no such endpoint"})
        handler: Callable[[re.Match[str], RecordedRequest], Canned] = getattr(
            self, f"_{request.route}"
        )
        return handler(match, request)

    def _canned(self, route: str, key: str | None) -> Canned | None:
        with self._lock:
            queue = self._programs.get(key or "") or self._programs.get(f"route:{route}")
            if not queue:
                return None
            answer = queue[0]
            if answer.times is not None:
                answer.times -= 1
                if answer.times <= 0:
                    queue.pop(0)
            return answer

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    # -- protocols -------------------------------------------------------------------------
    def _bearer_ok(self, req: RecordedRequest, token: str) -> bool:
        return hmac.compare_digest(req.headers.get("authorization", ""), f"Bearer {token}")

    def _twilio(self, match: re.Match[str], req: RecordedRequest) -> Canned:
        expected = base64.b64encode(f"{self.twilio_sid}:{self.twilio_token}".encode()).decode()
        if match["sid"] != self.twilio_sid or req.headers.get("authorization") != (
            f"Basic {expected}"
        ):
            return Canned(401, twilio_error(20003, 401, "Authenticate").body)
        if not req.headers.get("content-type", "").startswith("application/x-www-form"):
            return Canned(400, twilio_error(20001, 400, "Expected form encoding").body)
        form = req.form()
        to = form.get("To", "")
        if (canned := self._canned(req.route, to)) is not None:
            return canned.answer()
        if not to:
            return Canned(400, twilio_error(21604, 400, "A 'To' phone number is required.").body)
        if not form.get("Body"):
            return Canned(400, twilio_error(21602, 400, "Message body is required.").body)
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return Canned(400, twilio_error(21603, 400, "A 'From' number is required.").body)
        if not E164.match(to):
            return Canned(400, twilio_error(21211, 400, f"Invalid 'To' Phone Number: {to}").body)
        sid = f"SM{self._next_id():032x}"
        return Canned(
            201,
            {
                "sid": sid,
                "account_sid": self.twilio_sid,
                "to": to,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form["Body"],
                "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                "num_segments": "1",
                "error_code": None,
                "uri": f"/2010-04-01/Accounts/{self.twilio_sid}/Messages/{sid}.json",
            },
        )

    def _gateway(self, match: re.Match[str], req: RecordedRequest) -> Canned:
        if not self._bearer_ok(req, self.gateway_token):
            return Canned(401, {"error": "unauthorized"})
        if req.method == "GET":
            fields: Any = req.query
        elif req.headers.get("content-type", "").startswith("application/json"):
            fields = req.json()
        else:
            fields = req.form()
        to = fields.get("to") if isinstance(fields, dict) else None
        if (canned := self._canned(req.route, str(to))) is not None:
            return canned.answer()
        if not to or not fields.get("text"):
            return Canned(422, {"error": "to and text are required"})
        return Canned(200, {"status": "queued", "data": {"id": f"gw-{self._next_id()}"}})

    def _whatsapp(self, match: re.Match[str], req: RecordedRequest) -> Canned:
        if not self._bearer_ok(req, self.whatsapp_token):
            return Canned(401, graph_error(190, 401, "Invalid OAuth access token.").body)
        if match["phone_id"] != self.whatsapp_phone_number_id:
            return Canned(400, graph_error(100, 400, "Unsupported post request.").body)
        payload = req.json()
        to = str(payload.get("to", ""))
        if (canned := self._canned(req.route, to)) is not None:
            return canned.answer()
        problem = _whatsapp_problem(payload)
        if problem:
            return Canned(400, graph_error(100, 400, problem).body)
        wamid = "wamid." + base64.b64encode(f"fake-{self._next_id()}".encode()).decode()
        return Canned(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            },
        )

    def _fcm(self, match: re.Match[str], req: RecordedRequest) -> Canned:
        if not self._bearer_ok(req, self.fcm_token):
            return fcm_error("UNAUTHENTICATED").answer()
        if match["project"] != self.fcm_project:
            return fcm_error("SENDER_ID_MISMATCH").answer()
        message = req.json().get("message")
        token = message.get("token") if isinstance(message, dict) else None
        if (canned := self._canned(req.route, token)) is not None:
            return canned.answer()
        data = message.get("data", {}) if isinstance(message, dict) else None
        if not token or not isinstance(data, dict):
            return fcm_error("INVALID_ARGUMENT").answer()
        if not all(isinstance(v, str) for v in data.values()):
            return fcm_error("INVALID_ARGUMENT", message="data values must be strings").answer()
        return Canned(200, {"name": f"projects/{self.fcm_project}/messages/{self._next_id()}"})

    def _webhook(self, match: re.Match[str], req: RecordedRequest) -> Canned:
        # Deliberately not the production verifier: an independent reading of the spec.
        parts = dict(
            p.split("=", 1)
            for p in req.headers.get("x-relais-signature", "").split(",")
            if "=" in p
        )
        signed = f"{parts.get('t', '')}.".encode() + req.body
        expected = hmac.new(self.webhook_secret.encode(), signed, hashlib.sha256).hexdigest()
        fresh = parts.get("t", "").isdigit() and abs(time.time() - int(parts["t"])) < 300
        if not (fresh and hmac.compare_digest(expected, parts.get("v1", ""))):
            return Canned(401, {"error": "bad signature"})
        if (canned := self._canned(req.route, match["name"])) is not None:
            return canned.answer()
        return Canned(204)


def _whatsapp_problem(payload: Any) -> str | None:
    if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required."
    if not payload.get("to"):
        return "The parameter to is required."
    kind = payload.get("type")
    if kind == "text":
        return None if payload.get("text", {}).get("body") else "text.body is required."
    if kind == "template":
        template = payload.get("template") or {}
        if not template.get("name") or not (template.get("language") or {}).get("code"):
            return "template.name and template.language.code are required."
        return None
    return f"Unsupported message type {kind!r}."
