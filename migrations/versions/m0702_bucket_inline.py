"""Planning speed: relais_bucket as an inlinable (stable) SQL function (PostgreSQL inlines
a SQL function only when its declared volatility covers its body's, and `convert_to` is
stable; same results, half the cost per row), and no secondary index on
campaign_recipients (half a million rows a campaign; the funnel and the recipient lists
read one campaign through the primary key)."""

from migrations.sql import sql_migration

ID = "2026-11-24T07:02:00:000000"

SQL = """
create or replace function relais_bucket(salt text, subject text) returns integer
language sql stable parallel safe as $$
    select ((((('x' || substr(encode(sha256(convert_to(salt || ':' || subject, 'UTF8')),
                                        'hex'), 1, 16))::bit(64)::bigint) % 10000)
             + 10000) % 10000)::integer
$$;

drop index campaign_recipients_step;
"""

forwards = sql_migration(ID, "planning speed: inlinable relais_bucket, leaner recipients",
                         SQL)
