from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.messaging.dispatch import Dispatcher, DispatchReport, dispatch
from tenants.context import Actor, TenantContext
from tenants.service import context_for
from tests.conftest import auth
from tests.fakes import FakeProviders, SmtpSink
from tests.templates.factories import unique_id

PUBLIC_URL = "https://relais.test"
_TEST_ACTOR = Actor(kind="system", id="test")


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as providers:
        yield providers


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def links(html: str, kind: str) -> list[str]:
    return re.findall(rf'(https://relais\.test/t/{kind}/[^"\s>]+)', html)


@dataclass
class Env:
    """One tenant ready to send: admin key, the app's client, a dispatcher whose tracking
    links use an https public URL (so RFC 8058 one-click is advertised)."""

    client: Any
    db: Any
    redis: Any
    settings: Any
    plugins: Any
    hq_key: str
    tenant: Any
    key: str
    ctx: TenantContext
    dispatcher: Dispatcher = field(init=False)

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(db=self.db, redis=self.redis,
                                     settings=self.settings.with_changes(public_url=PUBLIC_URL),
                                     plugins=self.plugins, concurrency=4)

    @property
    def base(self) -> str:
        return f"/v1/tenants/{self.tenant.id}"

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.key)

    async def enable(self, plugin: str, config: dict[str, Any]) -> None:
        r = await self.client.put(f"/v1/hq/plugins/{plugin}", headers=auth(self.hq_key),
                                  json={"allowed": True})
        assert r.status_code == 200, r.text
        r = await self.client.put(f"{self.base}/plugins/{plugin}", headers=self.headers,
                                  json={"enabled": True, "config": config})
        assert r.status_code == 200, r.text

    async def enable_email(self, sink: SmtpSink) -> None:
        await self.enable("email", {"host": sink.host, "port": sink.port, "tls": "none",
                                    "from_address": "info@reseau-lyon.fr",
                                    "from_name": "Réseau Lyon", "local_hostname": "relais.test"})

    async def customer(self, *, consents: tuple[tuple[str, str], ...] = (),
                       email: str | None = None, phone: str | None = None,
                       **traits: Any) -> str:
        identifiers = {"email": email or f"{unique_id('c')}@reseau-lyon.fr"}
        if phone:
            identifiers["phone"] = phone
        r = await self.client.post(f"{self.base}/identify", headers=self.headers,
                                   json={"identifiers": identifiers, "traits": traits})
        assert r.status_code == 200, r.text
        customer_id = r.json()["customer_id"]
        if consents:
            r = await self.client.put(
                f"{self.base}/customers/{customer_id}/consents", headers=self.headers,
                json={"items": [{"channel": c, "purpose": p, "status": "granted",
                                 "legal_basis": "consent", "source": "test"}
                                for c, p in consents]})
            assert r.status_code == 200, r.text
        return customer_id

    async def send(self, template_id: str, customer_id: str, **extra: Any) -> dict[str, Any]:
        body = {"idempotency_key": unique_id("k"), "customer_id": customer_id,
                "template_id": template_id, "data": {"line": "T1"}} | extra
        r = await self.client.post(f"{self.base}/messages", headers=self.headers, json=body)
        assert r.status_code == 202, r.text
        return r.json()

    async def message(self, message_id: str) -> dict[str, Any]:
        r = await self.client.get(f"{self.base}/messages/{message_id}", headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def dispatch(self, channel: str, **kw: Any) -> DispatchReport:
        return await dispatch(self.dispatcher, self.ctx, channel, **kw)

    async def policy(self, **overrides: Any) -> None:
        r = await self.client.put(f"{self.base}/messaging-policy/overlay", headers=self.headers,
                                  json={"overrides": overrides})
        assert r.status_code == 200, r.text


@pytest.fixture
async def env(client, db, redis, settings, app, hq_key, make_tenant, make_key) -> Env:
    tenant = await make_tenant("msg")
    key = await make_key(tenant.id)
    return Env(client=client, db=db, redis=redis, settings=settings, plugins=app.state.plugins,
               hq_key=hq_key, tenant=tenant, key=key, ctx=context_for(tenant, _TEST_ACTOR))
