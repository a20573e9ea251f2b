"""The suppression-list key derivation: version 1 is the stored salt, version 2 needs the
deployment secret and is bound to the tenant and its salt."""

from __future__ import annotations

import pytest

from core.errors import ConfigurationError
from core.identity.keys import Keys, StoredKey, suppression_key

SALT = bytes(range(32))
SECRET = b"deployment-secret"


def test_version_1_is_the_stored_salt_whatever_the_secret():
    assert suppression_key(SECRET, "lyon", SALT, 1) == SALT
    assert suppression_key(b"", "lyon", SALT, 1) == SALT


def test_version_2_depends_on_secret_tenant_and_salt():
    key = suppression_key(SECRET, "lyon", SALT, 2)
    assert len(key) == 32 and key != SALT
    assert key == suppression_key(SECRET, "lyon", SALT, 2)
    assert key != suppression_key(b"other-secret", "lyon", SALT, 2)
    assert key != suppression_key(SECRET, "rabat", SALT, 2)
    assert key != suppression_key(SECRET, "lyon", bytes(32), 2)
    assert Keys(SECRET.decode()).suppression_key(StoredKey("lyon", SALT, 2)) == key


def test_missing_secret_or_unknown_version_fails_loudly():
    with pytest.raises(ConfigurationError, match="RELAIS_SECRET_KEY"):
        suppression_key(b"", "lyon", SALT, 2)
    with pytest.raises(ConfigurationError, match="version 3"):
        suppression_key(SECRET, "lyon", SALT, 3)


def test_nothing_secret_in_reprs():
    assert SECRET.decode() not in repr(Keys(SECRET.decode()))
    assert str(SALT) not in repr(StoredKey("lyon", SALT, 2))
