"""Facts the platform records about customers in the events table, next to ingested ones,
so journeys and segments react to them like to any event: `segment_entered`,
`segment_exited` (segments) and `stage_changed` (lifecycle).

Written set-based, as a data-modifying CTE of the statement that produced the change (a
refresh may move a million customers). Message ids are deterministic, so a retried job
writes nothing twice. Source `relais`: not a connector, never validated against the
tenant's catalog (the types are in `vocabulary.SYSTEM_EVENTS`).
"""

from __future__ import annotations

SOURCE = "relais"


def insert_facts(changes: str, event_type: str, segment_id_sql: str, at_sql: str) -> str:
    """Insert one `segment_entered`/`segment_exited` event per `customer_id` of the CTE
    named `changes`. `segment_id_sql` and `at_sql` are bind placeholders."""
    assert event_type in ("segment_entered", "segment_exited")
    return f"""insert into events (tenant_id, message_id, customer_id, type, occurred_at,
                                   properties, source)
        select current_setting('relais.tenant_id'),
               '{event_type}:' || {segment_id_sql} || ':' || x.customer_id || ':'
                   || (extract(epoch from {at_sql}) * 1000000)::bigint,
               x.customer_id, '{event_type}', {at_sql},
               jsonb_build_object('segment_id', {segment_id_sql}), '{SOURCE}'
        from {changes} x
        on conflict (tenant_id, message_id) do nothing"""


def insert_stage_facts(changes: str, run_id_sql: str, version_sql: str, at_sql: str) -> str:
    """One `stage_changed` event per row of `changes` (customer_id, old_stage,
    new_stage), with `from`/`to` properties."""
    return f"""insert into events (tenant_id, message_id, customer_id, type, occurred_at,
                                   properties, source)
        select current_setting('relais.tenant_id'),
               'stage_changed:' || {run_id_sql} || ':' || x.customer_id,
               x.customer_id, 'stage_changed', {at_sql},
               jsonb_build_object('from', x.old_stage, 'to', x.new_stage,
                                  'version', {version_sql}), '{SOURCE}'
        from {changes} x
        order by x.customer_id
        on conflict (tenant_id, message_id) do nothing"""
