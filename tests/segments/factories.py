from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from core.events.schemas import EventIn, Identifiers, IdentifyIn
from core.events.service import identify, ingest_events
from core.segments import definition as d
from core.segments.schemas import SegmentCreate
from core.segments.service import create_segment


async def make_segment(world) -> str:
    created = await create_segment(world.db, world.ctx, SegmentCreate(
        name="walk segment", definition=d.FieldCondition(field="country", value="FR")))
    return created.id


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def track(db, ctx, events: list[tuple[str, str, float, dict]],
                now: datetime | None = None) -> dict[str, uuid.UUID]:
    """Ingest (person, event type, days ago, properties) through the ingestion service;
    returns each person's customer id."""
    now = now or datetime.now(UTC)
    items = [EventIn(message_id=_unique("seg"), type=type_,
                     identifiers=Identifiers(app_user_id=who),
                     occurred_at=now - timedelta(days=days_ago), properties=props)
             for who, type_, days_ago, props in events]
    results = await ingest_events(db, ctx, items, source="test")
    assert all(r.status == "accepted" for r in results), results
    return {who: r.customer_id for (who, *_), r in zip(events, results, strict=True)}


async def person(db, ctx, who: str, **traits) -> uuid.UUID:
    """Create or update a profile through the ingestion service (identify)."""
    [result] = await identify(db, ctx, [IdentifyIn(identifiers=Identifiers(app_user_id=who),
                                                   traits=traits)], source="test")
    assert result.status == "accepted", result
    return result.customer_id


def trips(who: str, count: int, days_ago: float = 1, line: str = "T1") -> list:
    return [(who, "trip_validated", days_ago + i * 0.01, {"line": line}) for i in range(count)]
