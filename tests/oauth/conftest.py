"""The app running under uvicorn on a free local port, and helpers that speak OAuth to it
the way a partner's tool would (httpx, form posts, the consent pages' HTML)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn

from api.app import create_app
from core.settings import Settings
from tests.conftest import auth


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_url(settings: Settings) -> Iterator[str]:
    """The real app (own lifespan, own pool) served by uvicorn in a thread: requests go
    through sockets, uvicorn's HTTP parsing, cookies and redirects like a partner's."""
    port = free_port()
    app = create_app(settings.with_changes(host="127.0.0.1", port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="live-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start under uvicorn")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
async def http(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh client (own cookie jar, like a fresh browser) per test."""
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as client:
        yield client


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


async def register(http: httpx.AsyncClient, hq_key: str, **fields) -> dict:
    body = {"name": "Partner tool", "client_type": "confidential",
            "scopes": ["tenants:read", "customers:read"],
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://partner.example/callback"]} | fields
    r = await http.post("/v1/hq/oauth/clients", json=body, headers=auth(hq_key))
    assert r.status_code == 201, r.text
    return r.json()


async def post_form(http: httpx.AsyncClient, url: str, pairs: list[tuple[str, str]],
                    **kwargs) -> httpx.Response:
    """A form post keeping repeated fields, as a browser sends it."""
    return await http.post(url, content=urlencode(pairs), **kwargs, headers={
        "Content-Type": "application/x-www-form-urlencoded"})


def basic(client: dict) -> httpx.BasicAuth:
    return httpx.BasicAuth(client["client_id"], client["client_secret"])


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, html
    return match.group(1)


def form_params(html: str) -> list[tuple[str, str]]:
    """The hidden fields of the page's form, as a browser would submit them."""
    import html as htmllib
    return [(htmllib.unescape(k), htmllib.unescape(v)) for k, v in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)]


def auth_params(client: dict, *, challenge: str | None = None, scope: str | None = None,
                state: str = "xyz", redirect_uri: str | None = None,
                tenant: str | None = None) -> dict[str, str]:
    params = {"response_type": "code", "client_id": client["client_id"], "state": state,
              "redirect_uri": redirect_uri or client["redirect_uris"][0]}
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    if scope:
        params["scope"] = scope
    if tenant:
        params["tenant"] = tenant
    return params


async def sign_in(http: httpx.AsyncClient, params: dict[str, str], admin_key: str,
                  approve_for: str | None = None) -> httpx.Response:
    """From the authorisation URL to the consent page (signing in with the admin key)."""
    page = await http.get("/oauth/authorize", params=params)
    assert page.status_code == 200 and 'id="signin"' in page.text, page.text
    form = [*form_params(page.text), ("api_key", admin_key)]
    if approve_for:
        form.append(("approve_for", approve_for))
    r = await post_form(http, "/oauth/authorize/session", form)
    if r.status_code != 303:
        return r
    return await http.get(r.headers["location"])


async def decide(http: httpx.AsyncClient, consent_page: httpx.Response,
                 decision: str = "approve") -> dict[str, str]:
    """Clicks a button of the consent page; returns the query the client is sent back with."""
    assert 'id="consent"' in consent_page.text, consent_page.text
    r = await post_form(http, "/oauth/authorize",
                        [*form_params(consent_page.text), ("decision", decision)])
    assert r.status_code == 302, r.text
    return {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}


async def authorize(http: httpx.AsyncClient, client: dict, admin_key: str,
                    **kwargs) -> dict[str, str]:
    page = await sign_in(http, auth_params(client, **kwargs), admin_key)
    return await decide(http, page)


async def exchange(http: httpx.AsyncClient, client: dict, code: str, *,
                   verifier: str | None = None, redirect_uri: str | None = None) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": redirect_uri or client["redirect_uris"][0]}
    if verifier:
        data["code_verifier"] = verifier
    if client.get("client_secret"):
        return await http.post("/oauth/token", data=data, auth=basic(client))
    return await http.post("/oauth/token", data=data | {"client_id": client["client_id"]})


async def client_credentials(http: httpx.AsyncClient, client: dict,
                             **extra: str) -> httpx.Response:
    return await http.post("/oauth/token", data={"grant_type": "client_credentials", **extra},
                           auth=basic(client))

