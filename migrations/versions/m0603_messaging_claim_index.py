"""Messaging: claim indexes only hold the rows they serve.

A full (tenant_id, status, channel, scheduled_at) index gets a new entry at every status
change of every message (planned → sending → sent → delivered...), which costs the dispatch
and callback hot paths an index insertion per update. Partial indexes on the two statuses
the dispatcher looks for stay small and are left alone once a message moves on.
"""

from migrations.sql import sql_migration

ID = "2026-11-24T06:03:00:000000"

SQL = """
drop index messages_claim;
create index messages_claim on messages (tenant_id, channel, scheduled_at)
    where status = 'planned';
create index messages_leases on messages (tenant_id, channel, lease_until)
    where status = 'sending';
"""

forwards = sql_migration(ID, "messaging: partial claim and lease indexes", SQL)
