"""The fast path for plain ASCII ids must agree with the general normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.identity.normalise import (
    InvalidIdentifier,
    _normalise_id,
    _normalise_id_general,
)

_KINDS = st.sampled_from(["ticketing_id", "loyalty_id", "app_user_id", "external"])


def _outcome(normalise, kind: str, value: str) -> str:
    try:
        return normalise(kind, value)
    except InvalidIdentifier as err:
        return f"rejected: {err.reason}"


@settings(max_examples=3000)
@given(_KINDS, st.text(alphabet=st.characters(max_codepoint=127), max_size=140))
def test_fast_path_agrees_with_the_general_path_on_ascii(kind, value):
    assert _outcome(_normalise_id, kind, value) == _outcome(_normalise_id_general, kind, value)


@given(_KINDS, st.text(max_size=20))
def test_fast_path_agrees_with_the_general_path_on_any_text(kind, value):
    assert _outcome(_normalise_id, kind, value) == _outcome(_normalise_id_general, kind, value)


def test_plain_ids():
    assert _normalise_id("ticketing_id", "tcl00012345") == "TCL00012345"
    assert _normalise_id("app_user_id", "App-42") == "App-42"
    assert _normalise_id("loyalty_id", " ab 12\t") == "AB12"  # blanks: the general path
    with pytest.raises(InvalidIdentifier):
        _normalise_id("app_user_id", "")
    with pytest.raises(InvalidIdentifier):
        _normalise_id("app_user_id", "x" * 129)
