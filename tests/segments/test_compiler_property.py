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
from tests.segments.strategies import definitions


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


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(people=customers(), nodes=st.lists(definitions(), min_size=1, max_size=3))
async def test_compiled_sql_agrees_with_the_evaluator(db, seg_world, people, nodes):
    for node in nodes:
        # What hypothesis builds must also be what the API accepts, through JSON.
        node = d.decode(msgspec.json.decode(msgspec.json.encode(node)))
        validate(node, seg_world.vocab)
        expected = Evaluator(seg_world.vocab, NOW).members(node, people)
        actual = await _members_in_sql(db, seg_world, people, node)
        assert actual == expected, msgspec.json.encode(node).decode()
