"""Events: each connection draws event ids from its own cached range.

With the default cache of 1, every insert takes the sequence's buffer lock and concurrent
ingestion batches all append to the same rightmost leaf of the primary-key index; with a
per-backend range of 1,000 ids they write to different leaves. Ids stay unique but are no
longer in commit order across connections (nothing relies on that: timelines sort by time).
"""

from migrations.sql import sql_migration

ID = "2026-11-24T03:02:00:000000"

SQL = """
alter table events alter column id set cache 1000;
"""

forwards = sql_migration(ID, "events: cached id ranges per connection", SQL)
