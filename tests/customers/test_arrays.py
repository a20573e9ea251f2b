from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from core.identity.arrays import array_literal


# PostgreSQL text cannot hold NUL at all (ingestion rejects it before SQL), nor lone
# surrogates (no UTF-8 encoding: asyncpg's own encoder refuses them too).
@given(st.lists(st.one_of(st.none(), st.text(st.characters(blacklist_characters='\x00',
                                                           blacklist_categories=("Cs",)),
                                                     max_size=30))))
@settings(max_examples=60, deadline=None)
async def test_text_arrays_round_trip_through_postgres(db, values):
    async with db.pool.acquire() as conn:
        back = await conn.fetchval("select $1::text::text[]", array_literal(values))
    assert back == values


async def test_uuid_and_timestamp_arrays(db):
    ids = [uuid.uuid4(), None, uuid.uuid4()]
    times = [datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), None]
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("select $1::text::uuid[]", array_literal(ids)) == ids
        assert await conn.fetchval("select $1::text::timestamptz[]", array_literal(times)) \
            == times
