"""Overlay version numbers past the `integer` column (found by tests/platform/test_fuzz.py):
a 400 naming `version`, not a driver overflow answered as a 500."""

from __future__ import annotations

from tests.conftest import auth


async def test_version_past_int32_is_a_400_naming_it(client, hq_key, make_tenant):
    tenant = await make_tenant("vb")
    for segment in ("canvas", "messaging-policy", "pressure"):
        base = f"/v1/hq/{segment}/versions/{2**31}"
        for method, url, body in (("GET", base, None),
                                  ("POST", f"{base}/pilot", {"tenants": [tenant.id]}),
                                  ("POST", f"{base}/propagate", None)):
            r = await client.request(method, url, json=body, headers=auth(hq_key))
            assert r.status_code == 400, (method, url, r.status_code, r.text)
            assert r.json()["field"] == "version"
        r = await client.get(f"/v1/hq/{segment}/versions/{2**31 - 1}", headers=auth(hq_key))
        assert r.status_code == 404
