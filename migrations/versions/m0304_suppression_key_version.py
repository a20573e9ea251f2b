"""Data settings: the version of the suppression list's hashing key.

Version 1 is the stored `hash_salt` used as the key, as every tenant had until now: existing
rows get it, so their suppression entries keep matching. Version 2 derives the key from the
deployment secret and the salt (`core.identity.keys`), so a copy of the database alone no
longer tests guesses against the list; the application writes it for every row it creates.
The default stays 1 on purpose: a row inserted by code that does not name a version (an
older release still running during a rolling upgrade) hashes with the bare salt.
"""

from migrations.sql import sql_migration

ID = "2026-11-24T03:04:00:000000"

SQL = """
alter table tenant_data_settings
    add column hash_key_version smallint not null default 1
        check (hash_key_version in (1, 2));
"""

forwards = sql_migration(ID, "data settings: suppression-list key version", SQL)
