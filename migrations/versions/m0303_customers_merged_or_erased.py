"""Customers: a small index of the profiles that were merged away or erased.

Imports name the profiles they have just identified by id; what may have happened to
one since is a merge or an erasure (profiles are never deleted), so checking a batch of
ids probes this index, which holds only those profiles, instead of the primary key.
"""

from migrations.sql import sql_migration

ID = "2026-11-24T03:03:00:000000"

SQL = """
create index customers_merged_or_erased on customers (tenant_id, id)
    where merged_into is not null or erased_at is not null;
"""

forwards = sql_migration(ID, "customers: index of merged or erased profiles", SQL)
