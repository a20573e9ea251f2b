"""A campaign's audience: the current members of a (global or local) segment.

The snapshot is taken once, when planning starts, and cut into batches stored as arrays of
customer ids (`campaign_batches`): a crash mid-plan resumes on exactly the same people,
and a batch already decided is never decided again. Merged-away profiles resolve to their
survivor (one person, one decision); the same survivor reached twice counts once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from core.db import Connection
from core.errors import Conflict, InvalidInput, NotFound
from core.segments.membership import refresh_in
from core.segments.service import fetch_segment
from tenants.context import TenantContext

BATCH_SIZE = 50_000

# Current members of segment $1, survivors of merges, each once. Used by the snapshot and
# by simulations (which do not snapshot).
MEMBERS_SQL = """
    select distinct coalesce(c.merged_into, c.id) as customer_id
    from segment_memberships m
    join customers c on c.tenant_id = m.tenant_id and c.id = m.customer_id
    where m.segment_id = $1 and m.exited_at is null"""


async def check_segment(conn: Connection, ctx: TenantContext, segment_id: str) -> None:
    try:
        segment = await fetch_segment(conn, segment_id)
    except NotFound:
        raise InvalidInput(f"segment {segment_id!r} not found", field="segment_id") from None
    if segment.status != "active":
        raise InvalidInput(f"segment {segment_id!r} is archived", field="segment_id")


async def ensure_fresh(conn: Connection, ctx: TenantContext, segment_id: str) -> None:
    """A segment never refreshed in this tenant (a global one just adopted, say) is
    refreshed now; otherwise its materialised membership is the audience, as of its last
    scheduled refresh."""
    refreshed = await conn.fetchval(
        "select refreshed_at from segment_states where segment_id = $1", segment_id)
    if refreshed is None:
        try:
            await refresh_in(conn, ctx, segment_id, datetime.now(UTC))
        except (Conflict, NotFound) as exc:
            raise InvalidInput(f"segment {segment_id!r} cannot be evaluated: {exc.detail}",
                               field="segment_id") from None


async def snapshot(conn: Connection, ctx: TenantContext, campaign_id: UUID, segment_id: str,
                   batch_size: int = BATCH_SIZE) -> tuple[int, int]:
    """Store the audience in batches, once (a second call finds them and changes nothing).
    Returns (audience size, number of batches)."""
    existing = await conn.fetchrow(
        """select coalesce(sum(cardinality(customer_ids)), 0)::int as size,
                  count(*)::int as batches
           from campaign_batches where campaign_id = $1""", campaign_id)
    if existing["batches"]:
        return existing["size"], existing["batches"]
    await ensure_fresh(conn, ctx, segment_id)
    # Batches follow the pressure lock partitions (first byte of the customer id, see
    # core.pressure.service): batch b holds the partitions [256 b / n, 256 (b + 1) / n), so
    # the batches of one campaign never wait for each other's locks.
    row = await conn.fetchrow(
        f"""with audience as materialized ({MEMBERS_SQL}),
                n as (select least(256, greatest(1, ceil(count(*)::numeric / $3)))::int as n
                      from audience),
                numbered as (select customer_id,
                                    get_byte(uuid_send(customer_id), 0) * n.n / 256 as batch
                             from audience, n),
                stored as (
                    insert into campaign_batches (tenant_id, campaign_id, batch, customer_ids)
                    select current_setting('relais.tenant_id'), $2, batch,
                           array_agg(customer_id order by customer_id)
                    from numbered group by batch
                    returning cardinality(customer_ids) as size)
            select coalesce(sum(size), 0)::int as size, count(*)::int as batches
            from stored""", segment_id, campaign_id, batch_size)
    return row["size"], row["batches"]
