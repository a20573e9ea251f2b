"""A shared partial's name outside its documented pattern (found by
tests/platform/test_fuzz.py): a 400 naming `name`, not a check-constraint violation."""

from __future__ import annotations

from tests.conftest import auth


async def test_partial_name_outside_the_pattern_is_a_400_naming_it(client, hq_key):
    for name in ("Upper", "0digit", "x" * 64):
        r = await client.put(f"/v1/hq/template-partials/{name}",
                             json={"source": "{{ content }}"}, headers=auth(hq_key))
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] == "name", r.text
    r = await client.put("/v1/hq/template-partials/fuzz-ok",
                         json={"source": "{{ content }}"}, headers=auth(hq_key))
    assert r.status_code == 200, r.text
