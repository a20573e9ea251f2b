"""An import holding a NUL character (found by tests/platform/test_fuzz.py): its payload is
stored as jsonb, which cannot hold NUL, so the API's NUL guard (api/nul.py) refuses the
request naming the field."""

from __future__ import annotations


async def test_import_with_a_nul_character_is_a_422_naming_the_item(tenant):
    ok = {"message_id": "m1", "type": "app_opened", "identifiers": {"app_user_id": "u1"}}
    bad = dict(ok, message_id="m2", properties={"note": "a\x00b"})
    r = await tenant.post("/imports", {"kind": "events", "items": [ok, bad]})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "items[1].properties.note"
    r = await tenant.post("/imports", {"kind": "events", "items": [ok]})
    assert r.status_code == 202, r.text
