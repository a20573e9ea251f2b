"""Rate limits of the public OAuth endpoints: per client_id and per remote address, counted
in Redis, token endpoints and browser pages apart.

The app is the session's (real PostgreSQL and Redis), reached through ASGI transports that
present chosen remote addresses. The limiter's clock is pinned 15 s before a minute boundary,
so every request of a step falls in one window and crossing to the next is a step, not a
sleep."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import httpx
import pytest
from litestar import Litestar

from core import ratelimit
from core.errors import ConfigurationError
from core.settings import Settings, load_settings
from tests.oauth.conftest import (
    auth_params,
    basic,
    client_credentials,
    form_params,
    post_form,
    register,
)

CLIENT_BUDGET, ADDRESS_BUDGET = 3, 8
_hosts = itertools.count(1)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    pinned = Clock((time.time() // 60) * 60 + 45)
    monkeypatch.setattr(ratelimit, "time", pinned)
    return pinned


@pytest.fixture
def limited(app: Litestar, client: httpx.AsyncClient, settings: Settings) -> Iterator[None]:
    app.state.settings = settings.with_changes(  # the routes read the live settings
        oauth_client_rate_limit_per_minute=CLIENT_BUDGET,
        oauth_address_rate_limit_per_minute=ADDRESS_BUDGET)
    yield
    app.state.settings = settings


def from_address(app: Litestar, host: str | None = None) -> httpx.AsyncClient:
    host = host or f"203.0.113.{next(_hosts)}"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 50123)),
                             base_url="http://testserver")


async def _machine(http: httpx.AsyncClient, hq_key: str, tenant_id: str) -> dict:
    return await register(http, hq_key, grant_types=["client_credentials"], redirect_uris=[],
                          tenant=tenant_id)


async def test_token_endpoints_budget_per_client(app, client, hq_key, make_tenant, clock,
                                                 limited):
    tenant = await make_tenant("rl")
    partner, other = await _machine(client, hq_key, tenant.id), \
        await _machine(client, hq_key, tenant.id)
    wrong = partner | {"client_secret": "pcs_guessed"}
    async with from_address(app) as here, from_address(app) as elsewhere:
        r = await client_credentials(here, partner)
        assert r.status_code == 200, r.text
        assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) == ("3", "2")
        # Failed client authentications spend the budget too (guessing a secret).
        for _ in range(2):
            assert (await client_credentials(here, wrong)).status_code == 401
        r = await client_credentials(here, partner)
        assert r.status_code == 429
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"error": "temporarily_unavailable",
                            "error_description": "rate limit of 3 requests per minute per "
                                                 "client exceeded; retry in 15 s"}
        assert r.headers["retry-after"] == "15"
        assert r.headers["cache-control"] == "no-store"
        # The budget is the client's wherever it asks from (a guess spread over addresses),
        # and revocation and introspection share it.
        assert (await client_credentials(elsewhere, partner)).status_code == 429
        for endpoint in ("/oauth/revoke", "/oauth/introspect"):
            r = await elsewhere.post(endpoint, data={"token": "ro_x"}, auth=basic(partner))
            assert r.status_code == 429 and r.headers["retry-after"] == "15", endpoint
        # Another client from the same address is unaffected.
        assert (await client_credentials(here, other)).status_code == 200

        clock.now += 15  # the next window
        r = await client_credentials(here, partner)
        assert r.status_code == 200, r.text
        assert r.headers["ratelimit-remaining"] == "2"


async def test_token_endpoints_budget_per_address(app, client, hq_key, make_tenant, clock,
                                                  limited):
    tenant = await make_tenant("rl")
    partner = await _machine(client, hq_key, tenant.id)
    async with from_address(app) as sprayer, from_address(app) as honest:
        # One address trying many client ids: each id is fresh, the address is not.
        for n in range(ADDRESS_BUDGET):
            r = await sprayer.post("/oauth/token", data={"grant_type": "client_credentials"},
                                   auth=httpx.BasicAuth(f"pc_guess{n}", "pcs_guess"))
            assert r.status_code == 401, r.text
        r = await client_credentials(sprayer, partner)
        assert r.status_code == 429
        assert r.json()["error_description"] == ("rate limit of 8 requests per minute per "
                                                 "address exceeded; retry in 15 s")
        # The refused request was not counted against the partner, and another address is
        # unaffected: the partner still has its whole budget there.
        r = await client_credentials(honest, partner)
        assert r.status_code == 200, r.text
        assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) == ("3", "2")

        clock.now += 15
        assert (await client_credentials(sprayer, partner)).status_code == 200


async def test_authorisation_pages_budget(app, client, hq_key, make_tenant, make_key, clock,
                                          limited):
    tenant = await make_tenant("rl")
    partner, other = await register(client, hq_key), await register(client, hq_key)
    params = auth_params(partner, tenant=tenant.id)
    async with from_address(app) as browser, from_address(app) as elsewhere:
        page = await browser.get("/oauth/authorize", params=params)
        assert page.status_code == 200 and 'id="signin"' in page.text
        assert page.headers["ratelimit-remaining"] == "2"
        # Guessing the admin key on the sign-in form spends the budget.
        for _ in range(2):
            r = await post_form(browser, "/oauth/authorize/session",
                                [*form_params(page.text), ("api_key", "rt_guessed")])
            assert r.status_code == 401 and "signin" in r.text
        r = await browser.get("/oauth/authorize", params=params)
        assert r.status_code == 429
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["retry-after"] == "15"
        problem = r.json()
        assert problem["type"].endswith("/rate-limited") and problem["status"] == 429
        assert "per client" in problem["detail"]
        assert (await elsewhere.get("/oauth/authorize", params=params)).status_code == 429
        # Another partner's page from the same browser is unaffected...
        r = await browser.get("/oauth/authorize", params=auth_params(other, tenant=tenant.id))
        assert r.status_code == 200
        # ...and so is the partner's token endpoint (its back end, counted apart).
        r = await browser.post("/oauth/token", data={"grant_type": "authorization_code",
                                                     "code": "ra_x", "redirect_uri":
                                                     partner["redirect_uris"][0]},
                               auth=basic(partner))
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"

        clock.now += 15
        page = await browser.get("/oauth/authorize", params=params)
        assert page.status_code == 200 and 'id="signin"' in page.text
        admin_key = await make_key(tenant.id)
        r = await post_form(browser, "/oauth/authorize/session",
                            [*form_params(page.text), ("api_key", admin_key)])
        assert r.status_code == 303, r.text


async def test_counts_live_in_redis(app, client, hq_key, make_tenant, clock, limited,
                                    settings, redis):
    tenant = await make_tenant("rl")
    partner = await _machine(client, hq_key, tenant.id)
    async with from_address(app, "2001:db8:7:1::10") as one, \
            from_address(app, "2001:db8:7:1::99") as neighbour:
        assert (await client_credentials(one, partner)).status_code == 200
        assert (await client_credentials(neighbour, partner)).status_code == 200
    window = int(clock.now // 60)
    prefix = f"{settings.redis_prefix}:rl:oauth-endpoints:token"
    # Shared by every API process; an IPv6 host is counted by its /64.
    assert await redis.get(f"{prefix}:client:{partner['client_id']}:{window}") == b"2"
    assert await redis.get(f"{prefix}:address:2001:db8:7:1::/64:{window}") == b"2"


def test_budgets_come_from_the_environment():
    loaded = load_settings({"RELAIS_OAUTH_CLIENT_RATE_LIMIT_PER_MINUTE": "42",
                            "RELAIS_OAUTH_ADDRESS_RATE_LIMIT_PER_MINUTE": "99"})
    assert (loaded.oauth_client_rate_limit_per_minute,
            loaded.oauth_address_rate_limit_per_minute) == (42, 99)
    with pytest.raises(ConfigurationError, match="OAUTH_CLIENT_RATE_LIMIT_PER_MINUTE"):
        load_settings({"RELAIS_OAUTH_CLIENT_RATE_LIMIT_PER_MINUTE": "many"})
