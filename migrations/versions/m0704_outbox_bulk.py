"""Planning speed at scale, for the outbox (`messages`):

- `messages_source` also keys the customer: "does this campaign already have a message for
  these customers" (the dedupe filter) becomes a range probe over a batch's customers
  instead of reading every message the campaign planned so far (quadratic in batches);
- no foreign key from `messages.tenant_id` to `tenants`, as for `events`: a campaign plan
  inserts hundreds of thousands of rows and each paid a referential check against a row
  that never changes (tenants are never deleted; RLS already scopes every row)."""

from migrations.sql import sql_migration

ID = "2026-11-24T07:04:00:000000"

SQL = """
drop index messages_source;
create index messages_source on messages (tenant_id, source_type, source_id, customer_id);
alter table messages drop constraint messages_tenant_id_fkey;
"""

forwards = sql_migration(ID, "outbox: source index by customer, no tenant foreign key", SQL)
