"""The last scheduled send of a planned campaign, recorded when planning ends: the minute
tick completes campaigns without re-reading their recipients."""

from migrations.sql import sql_migration

ID = "2026-11-24T07:03:00:000000"

SQL = "alter table campaigns add column last_send_at timestamptz;"

forwards = sql_migration(ID, "campaigns: last scheduled send", SQL)
