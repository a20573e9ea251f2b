"""The fast path for plain emails must agree with email-validator on every input."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from core.identity.normalise import _plain_email

_LOCAL = st.text(alphabet="abcXYZ019.!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=70)
_LABEL = st.text(alphabet="abcxyz09-", min_size=1, max_size=65)
_TLD = st.sampled_from(["fr", "com", "ma", "test", "local", "io", "x", "c0m", "museum"])


def _library(value: str) -> str | None:
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return f"{checked.local_part.lower()}@{checked.ascii_domain.lower()}"


@settings(max_examples=3000)
@given(_LOCAL, st.lists(_LABEL, min_size=1, max_size=3), _TLD)
def test_fast_path_never_disagrees_with_the_library(local, labels, tld):
    value = f"{local}@{'.'.join([*labels, tld])}"
    fast = _plain_email(value)
    if fast is not None:  # when the fast path decides, it decides like the library
        assert fast == _library(value)


@given(st.emails())
def test_fast_path_takes_ordinary_addresses(value):
    fast = _plain_email(value)
    assert fast is None or fast == _library(value)


def test_fast_path_covers_the_common_case():
    assert _plain_email("  Zoe.Martin+news@Reseau-Lyon.FR ") == "zoe.martin+news@reseau-lyon.fr"
    assert _plain_email("a@b.test") is None  # special-use: left to the library
    assert _plain_email("zoé@café.fr") is None  # non-ASCII: left to the library
