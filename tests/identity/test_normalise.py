from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.identity.normalise import (
    DEFAULT_BLOCK_LIST,
    IDENTIFIER_KINDS,
    BlockList,
    InvalidIdentifier,
    hash_identifier,
    is_blocked,
    normalise_identifier,
)


def test_kinds() -> None:
    assert {"email", "phone", "ticketing_id", "app_user_id", "loyalty_id", "external"} == set(
        IDENTIFIER_KINDS
    )


@pytest.mark.parametrize(
    ("kind", "value", "region", "expected"),
    [
        ("email", "  Jean.Dupont@Exemple.FR ", None, "jean.dupont@exemple.fr"),
        ("email", "Zoé@Café.fr", None, "zoé@xn--caf-dma.fr"),
        ("email", "user@xn--caf-dma.fr", None, "user@xn--caf-dma.fr"),
        ("email", "first.last+promo@gmail.com", None, "first.last+promo@gmail.com"),
        ("phone", "06 12 34 56 78", "FR", "+33612345678"),
        ("phone", "06.12.34.56.78", "fr", "+33612345678"),
        ("phone", "0033 6 12 34 56 78", "FR", "+33612345678"),
        ("phone", "+33 (0)6 12 34 56 78", "MA", "+33612345678"),
        ("phone", "0661-234567", "MA", "+212661234567"),
        ("phone", "+212 661 234 567", None, "+212661234567"),
        ("phone", "(202) 555-0143", "US", "+12025550143"),
        ("ticketing_id", " ab 12 34\u200b ", None, "AB1234"),
        ("ticketing_id", "\uff21\uff22\uff11\uff12", None, "AB12"),  # full-width keyboard
        ("loyalty_id", "fid-0042 77", None, "FID-004277"),
        ("app_user_id", " aB3x\tZ9 ", None, "aB3xZ9"),
        ("external", "Zendesk:123", None, "zendesk:123"),
        ("external", " salesforce : 0015g00000AbCdE ", None, "salesforce:0015g00000AbCdE"),
        ("external", "crm:a:b", None, "crm:a:b"),
    ],
)
def test_normalisation_table(kind: str, value: str, region: str | None, expected: str) -> None:
    assert normalise_identifier(kind, value, region) == expected
    assert normalise_identifier(kind, expected, region) == expected


@pytest.mark.parametrize(
    ("kind", "value", "region"),
    [
        ("email", "", None),
        ("email", "jean.dupont", None),
        ("email", "jean@@exemple.fr", None),
        ("email", "jean..dupont@exemple.fr", None),
        ("email", "jean@localhost", None),
        ("email", "Jean <jean@exemple.fr>", None),
        ("email", "jean@[192.0.2.1]", None),
        ("email", "jean dupont@exemple.fr", None),
        ("phone", "", "FR"),
        ("phone", "06 12 34 56 78", None),  # national form without a region
        ("phone", "12", "FR"),
        ("phone", "+33 0 00 00 00 00", "FR"),
        ("phone", "not a number", "FR"),
        ("ticketing_id", "   ", None),
        ("app_user_id", "a\x00b", None),
        ("loyalty_id", "x" * 129, None),
        ("external", "123", None),
        ("external", ":123", None),
        ("external", "zendesk:", None),
        ("external", "Zen Desk!:1", None),
        ("passport", "X1", None),
    ],
)
def test_invalid_identifiers_are_rejected(kind: str, value: str, region: str | None) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalise_identifier(kind, value, region)
    assert caught.value.kind == kind
    assert caught.value.reason
    assert isinstance(caught.value, InvalidInput) and caught.value.status == 422


def test_unknown_default_region_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="region"):
        normalise_identifier("phone", "0612345678", "XX")


@given(st.emails())
def test_email_normalisation_is_idempotent(raw: str) -> None:
    try:
        once = normalise_identifier("email", raw)
    except InvalidIdentifier:
        assume(False)
        raise
    assert normalise_identifier("email", once) == once
    assert once == once.strip() and once == once.lower()
    assert once.rpartition("@")[2].isascii()
    # case and surrounding blanks never make a different identifier
    assert normalise_identifier("email", f"  {raw.upper()} ") == once


_REGIONS = ["FR", "MA", "BE", "GB", "US", "CA", "ES", "DE", "CI", "SN"]


@st.composite
def written_phones(draw: st.DrawFn) -> tuple[str, str, str | None]:
    """(text, default region, expected E.164 or None): a valid number as people write it,
    or digits and punctuation that may or may not be a number."""
    region = draw(st.sampled_from(_REGIONS))
    if draw(st.booleans()):
        kind = draw(st.sampled_from([0, 1]))  # FIXED_LINE, MOBILE
        example = phonenumbers.example_number_for_type(region, kind)
        style = draw(st.sampled_from([0, 1, 3]))  # E164, INTERNATIONAL, RFC3966
        expected = phonenumbers.format_number(example, 0)
        if draw(st.booleans()):
            # the national form only means the same number in its own region
            return phonenumbers.format_number(example, 2), region, expected
        return phonenumbers.format_number(example, style), draw(st.sampled_from(_REGIONS)), expected
    text = draw(st.sampled_from(["", "0", "+", "00"])) + draw(
        st.text(alphabet="0123456789 .-()", min_size=4, max_size=16)
    )
    return text, region, None


@given(written_phones())
def test_phone_normalisation_is_idempotent(case: tuple[str, str, str | None]) -> None:
    text, region, expected = case
    try:
        once = normalise_identifier("phone", text, region)
    except InvalidIdentifier:
        assert expected is None, f"{text!r} in {region} should be accepted"
        return
    if expected is not None:
        assert once == expected
    assert re.fullmatch(r"\+[1-9]\d{6,14}", once)
    # E.164 carries its country, so the default region no longer matters
    for other in _REGIONS:
        assert normalise_identifier("phone", once, other) == once
    number = phonenumbers.parse(once)
    international = phonenumbers.format_number(number, 1)
    assert normalise_identifier("phone", international, None) == once


@given(
    st.sampled_from(["ticketing_id", "loyalty_id", "app_user_id"]),
    st.text(min_size=1, max_size=40),
)
def test_id_normalisation_is_idempotent(kind: str, raw: str) -> None:
    try:
        once = normalise_identifier(kind, raw)
    except InvalidIdentifier:
        return
    assert normalise_identifier(kind, once) == once
    assert not any(char.isspace() for char in once)


# -- blocked values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("email", ""),
        ("email", "test@test.com"),
        ("email", "a@a.fr"),
        ("email", "null@gmail.com"),
        ("email", "noreply@tramway.fr"),
        ("email", "jean@example.com"),
        ("email", "xxxx@orange.fr"),
        ("phone", "+33000000000"),
        ("phone", "+33600000000"),
        ("phone", "+33611111111"),
        ("phone", "+33612345678"),
        ("phone", "+212600000000"),
        ("phone", "+11111111111"),
        ("ticketing_id", "0000000"),
        ("ticketing_id", "0"),
        ("ticketing_id", "NULL"),
        ("ticketing_id", "N/A"),
        ("loyalty_id", "UNDEFINED"),
        ("loyalty_id", "123456789"),
        ("loyalty_id", "XXXXXX"),
        ("app_user_id", "None"),
        ("app_user_id", "undefined"),
        ("app_user_id", "[object Object]"),
        ("external", "zendesk:null"),
        ("external", "zendesk:0000"),
    ],
)
def test_blocked_values(kind: str, value: str) -> None:
    assert is_blocked(kind, value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("email", "jean.dupont@exemple.fr"),
        ("email", "test.user@gmail.com"),
        ("email", "zoé@xn--caf-dma.fr"),
        ("phone", "+33612345679"),
        ("phone", "+212661234567"),
        ("ticketing_id", "AB1234"),
        ("ticketing_id", "10000001"),
        ("loyalty_id", "FID-004277"),
        ("app_user_id", "42"),
        ("app_user_id", "a1b2c3"),
        ("external", "zendesk:123"),
    ],
)
def test_real_values_are_not_blocked(kind: str, value: str) -> None:
    assert not is_blocked(kind, value)


def test_tenant_overlay_extends_the_block_list() -> None:
    assert not is_blocked("loyalty_id", "DEMO-1")
    assert is_blocked("loyalty_id", "DEMO-1", ["demo-1"])
    assert is_blocked("loyalty_id", "DEMO-77", [re.compile(r"demo-\d+")])
    assert is_blocked("email", "accueil@reseau.fr", ["accueil"])  # a shared desk mailbox
    overlay = BlockList(values={"phone": frozenset({"+33123456780"})})
    combined = DEFAULT_BLOCK_LIST.extended(overlay)
    assert is_blocked("phone", "+33123456780", block_list=combined)
    assert is_blocked("ticketing_id", "null", block_list=combined)
    assert not is_blocked("phone", "+33123456780")


def test_block_list_is_data() -> None:
    import msgspec

    encoded = msgspec.json.encode(DEFAULT_BLOCK_LIST)
    assert msgspec.json.decode(encoded, type=BlockList) == DEFAULT_BLOCK_LIST


# -- hashing -----------------------------------------------------------------------------

KEY = b"k" * 32


def test_hash_is_keyed_hmac_sha256() -> None:
    digest = hash_identifier("email", "jean@exemple.fr", KEY)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == hash_identifier("email", "jean@exemple.fr", KEY)
    assert digest != hash_identifier("email", "jean@exemple.fr", b"other-key-of-32-bytes-000000000")
    # the same string under another kind is another identifier
    assert hash_identifier("app_user_id", "42", KEY) != hash_identifier("loyalty_id", "42", KEY)


def test_hash_refuses_short_keys_and_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="key"):
        hash_identifier("email", "jean@exemple.fr", b"short")
    with pytest.raises(InvalidIdentifier):
        hash_identifier("passport", "X", KEY)


def test_phone_numbers_longer_than_e164_are_refused() -> None:
    # phonenumbers calls this German number valid, but +49 and 14 digits is not E.164.
    with pytest.raises(InvalidIdentifier):
        normalise_identifier("phone", "20100000000000", "DE")
