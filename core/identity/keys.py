"""The key of a tenant's GDPR suppression list, and the one function that derives it.

The list stores keyed hashes of identifiers (`core.identity.normalise.hash_identifier`) so
it outlives erasure without being a copy of them. The key must not be readable from the
database alone, or a copy of the database is enough to test guesses against the list:

- version 1 (tenants created before migration m0304): the key *is* the per-tenant random
  salt stored in `tenant_data_settings.hash_salt`. Kept as is so their existing entries
  keep matching; re-hashing is impossible (the list holds no identifiers).
- version 2 (every tenant created since): HKDF-SHA256 of the deployment secret
  (`settings.secret_key`), salted with the stored per-tenant salt and bound to the tenant
  id. The database holds the salt, the process holds the secret; neither alone gives the key.

So `RELAIS_SECRET_KEY` must never change: under another secret a version-2 tenant's list
matches nothing it recorded before (rotation would need a version 3 that keeps the old
secret to check against; not done).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import ConfigurationError

CURRENT_VERSION = 2
"""The version given to tenants whose settings row is created now."""

_V2_INFO = b"relais suppression-list key v2:"


@dataclass(frozen=True)
class StoredKey:
    """What the database holds about a tenant's key: not the key itself (from version 2)."""

    tenant_id: str
    salt: bytes = field(repr=False)
    version: int


def suppression_key(secret: bytes, tenant_id: str, salt: bytes, version: int) -> bytes:
    """The tenant's suppression-list hashing key. Every hash written to or matched against
    the list goes through here, so ingestion, erasure, opt-outs, bounces, dispatch and
    campaign planning agree."""
    if version == 1:
        return bytes(salt)
    if version == 2:
        if not secret:
            raise ConfigurationError(
                "RELAIS_SECRET_KEY is not set: the suppression list cannot be keyed")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(salt),
                    info=_V2_INFO + tenant_id.encode()).derive(secret)
    raise ConfigurationError(f"unknown suppression-list key version {version}")


class Keys:
    """The deployment secret's uses that need the database's rows to complete them. Built
    once per process by `Database.connect` from `settings.secret_key`; the secret is never
    written to the database or logged (no repr of it)."""

    def __init__(self, secret_key: str) -> None:
        self._secret = secret_key.encode()

    def __repr__(self) -> str:
        return "<Keys>"

    def suppression_key(self, stored: StoredKey) -> bytes:
        return suppression_key(self._secret, stored.tenant_id, stored.salt, stored.version)
