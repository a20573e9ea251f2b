"""The consent page in a real browser (headless Chromium driven over WebDriver): sign in
with the admin key, read what is asked, approve, land on the partner's redirect URI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.conftest import auth
from tests.oauth.conftest import auth_params, exchange, free_port, pkce, register
from tests.oauth.webdriver import Browser, find_chromium, install_chromium

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".relais" / "test" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    failure = install_chromium()
    if failure:
        pytest.skip(f"headless Chromium is not available and could not be installed: {failure}")
    chromium, driver = find_chromium()
    session = Browser(chromium, driver, free_port())
    yield session
    session.quit()


async def test_consent_page_in_a_real_browser(browser, http, live_url, hq_key, make_tenant,
                                              make_key):
    tenant = await make_tenant("web", name="Lyon transit")
    admin_key = await make_key(tenant.id)
    # The partner's callback: any page that loads will do; the code is in its URL.
    callback = f"{live_url}/healthz"
    client = await register(http, hq_key, name="Call-centre app", client_type="public",
                            redirect_uris=[callback])
    verifier, challenge = pkce()
    params = auth_params(client, challenge=challenge, scope="tenants:read customers:read",
                         state="st-42", tenant=tenant.id)

    browser.open(f"{live_url}/oauth/authorize?{urlencode(params)}")
    assert browser.text("#partner") == "Call-centre app"
    assert browser.text("#tenant") == tenant.id
    browser.type("#api_key", "rt_wrong_0_key")
    browser.click("#signin_submit")
    assert "not valid" in browser.text("#error")
    browser.type("#api_key", admin_key)
    browser.click("#signin_submit")

    browser.find("#consent")
    assert browser.text("#partner") == "Call-centre app"
    assert browser.text("#tenant") == "Lyon transit"
    assert browser.texts("#scopes li") == ["Read the tenant profile (tenants:read)",
                                           "Read customers (customers:read)"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(SCREENSHOTS / "oauth-consent.png")
    browser.click("#approve")

    landed = browser.wait_for_url(callback)
    back = {k: v[0] for k, v in parse_qs(urlsplit(landed).query).items()}
    assert back["state"] == "st-42" and back["code"].startswith("ra_")

    r = await exchange(http, client, back["code"], verifier=verifier)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    r = await http.get(f"/v1/tenants/{tenant.id}", headers=auth(token))
    assert r.status_code == 200 and r.json()["name"] == "Lyon transit"
