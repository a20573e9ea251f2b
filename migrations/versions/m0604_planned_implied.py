"""A message's `planned` event is implied by its row (`messages.planned_at`) and no longer
stored: planning half a million campaign messages wrote half a million event rows that said
nothing the row did not. Readers prepend it; this drops the rows written before."""

from migrations.sql import sql_migration

ID = "2026-11-24T06:04:00:000000"

# Every tenant's rows: the owner lifts the forced row security for this one statement, inside
# the migration's transaction (nobody else sees the table unforced).
SQL = """
alter table message_events no force row level security;
delete from message_events where status = 'planned';
alter table message_events force row level security;
"""

forwards = sql_migration(ID, "messages: the planned event is implied by the row", SQL)
