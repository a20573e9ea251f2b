"""The compiled SQL agrees with the reference evaluator on random small datasets."""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import scope_to_tenant
from core.segments import definition as d
from core.segments.compiler import compile_definition
from core.segments.validate import validate
from tests.segments.dataset import NOW, customers, load
from tests.segments.evaluator import Evaluator
from tests.segments.strategies import definitions, event_driven


class _Rollback(Exception):
    pass


async def _members_in_sql(db, world, people, node) -> set[str]:
    compiled = compile_definition(node, world.vocab, NOW)
    sql, args = compiled.select("c.id::text as id")
    async with db.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await scope_to_tenant(conn, world.ctx.tenant_id)
            await load(conn, world.ctx.tenant_id, people)
            rows = await conn.fetch(sql, *args)
        finally:
            await tx.rollback()
    return {r["id"] for r in rows}


async def _agree(db, seg_world, people, nodes) -> None:
    for node in nodes:
        # What hypothesis builds must also be what the API accepts, through JSON.
        node = d.decode(msgspec.json.decode(msgspec.json.encode(node)))
        validate(node, seg_world.vocab)
        expected = Evaluator(seg_world.vocab, NOW).members(node, people)
        actual = await _members_in_sql(db, seg_world, people, node)
        assert actual == expected, msgspec.json.encode(node).decode()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(people=customers(), nodes=st.lists(definitions(), min_size=1, max_size=3))
async def test_compiled_sql_agrees_with_the_evaluator(db, seg_world, people, nodes):
    await _agree(db, seg_world, people, nodes)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(people=customers(), nodes=st.lists(event_driven(), min_size=1, max_size=2))
async def test_segments_driven_by_events_agree_with_the_evaluator(db, seg_world, people,
                                                                   nodes):
    """Segments that need an events row and read no profile column start from the events
    aggregate (see core.segments.compiler._FROM_EVENTS): merged and erased profiles, whose
    events remain, must still be left out."""
    await _agree(db, seg_world, people, nodes)
