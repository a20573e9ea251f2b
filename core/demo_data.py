"""Customers, events, consents, a segment and lifecycle stages for a demo tenant, through the
same services the API uses (so the demo exercises identity resolution, the tracking plan and
the segment compiler for real). Deterministic: the same seed gives the same people."""

from __future__ import annotations

import random
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from core.consents.schemas import ConsentChange, ConsentChanges
from core.consents.service import set_consents
from core.db import Database
from core.events.schemas import EventIn, Identifiers, IdentifyIn
from core.events.service import identify, ingest_events
from core.lifecycle.service import evaluate
from core.segments.membership import refresh_segment
from core.segments.schemas import SegmentCreate
from core.segments.service import create_segment
from tenants.context import TenantContext

FIRST_NAMES = {
    "FR": ["Camille", "Léa", "Hugo", "Louis", "Chloé", "Nathan", "Inès", "Jules", "Manon"],
    "MA": ["Yasmine", "Omar", "Salma", "Youssef", "Imane", "Mehdi", "Khadija", "Anas"],
    "US": ["Emma", "Liam", "Olivia", "Noah", "Ava", "Elijah", "Sophia", "Mateo"],
}
LAST_NAMES = {
    "FR": ["Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Girard"],
    "MA": ["Alaoui", "Benali", "El Amrani", "Tazi", "Bennani", "Idrissi"],
    "US": ["Smith", "Garcia", "Johnson", "Martinez", "Brown", "Lee"],
}
LINES = ["T1", "T2", "T3", "B12", "B34", "M1", "M2"]
PHONE_PREFIX = {"FR": "+3361234", "MA": "+21266123", "US": "+1512555"}


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


async def load_customers(db: Database, ctx: TenantContext, *, customers: int = 300,
                         seed: int = 7) -> int:
    rng = random.Random(f"{ctx.tenant_id}:{seed}")
    country = ctx.country if ctx.country in FIRST_NAMES else "FR"
    language = ctx.default_locale.split("-")[0]
    people = []
    for i in range(customers):
        first, last = rng.choice(FIRST_NAMES[country]), rng.choice(LAST_NAMES[country])
        email = _ascii(f"{first}.{last}.{i}@demo-{ctx.tenant_id}.net".lower().replace(" ", ""))
        phone = f"{PHONE_PREFIX[country]}{i:04d}"
        people.append(IdentifyIn(
            identifiers=Identifiers(email=email, phone=phone),
            traits={"first_name": first, "last_name": last, "language": language,
                    "country": country}))
    results = await identify(db, ctx, people, source="demo")
    ids = [r.customer_id for r in results if r.customer_id is not None]
    await _load_events(db, ctx, rng, ids)
    for customer_id in ids:
        await set_consents(db, ctx, customer_id, ConsentChanges(items=[
            ConsentChange(channel=channel, purpose=purpose,
                          status="granted" if rng.random() < share else "denied",
                          legal_basis="consent", source="demo",
                          proof="demo data: opt-in box on the signup form")
            for channel, purpose, share in (("email", "marketing", 0.7),
                                            ("sms", "traffic_info", 0.5))]))
    return len(ids)


async def _load_events(db: Database, ctx: TenantContext, rng: random.Random,
                       ids: list[uuid.UUID]) -> None:
    now = datetime.now(UTC)
    events: list[EventIn] = []
    for customer_id in ids:
        # A few heavy riders, many occasional ones, some who stopped coming.
        trips = rng.choice([0, 1, 2, 4, 8, 15, 30])
        last_seen = rng.choice([1, 3, 10, 45, 120])
        for _ in range(trips):
            when = now - timedelta(days=last_seen + rng.random() * 60)
            events.append(EventIn(
                message_id=f"demo-{uuid.UUID(int=rng.getrandbits(128))}",
                type="trip_validated", customer_id=customer_id, occurred_at=when,
                properties={"line": rng.choice(LINES), "mode": rng.choice(["tram", "bus"])}))
        if trips and rng.random() < 0.5:
            events.append(EventIn(
                message_id=f"demo-{uuid.UUID(int=rng.getrandbits(128))}",
                type="ticket_purchased", customer_id=customer_id,
                occurred_at=now - timedelta(days=last_seen),
                properties={"product": rng.choice(["single", "day_pass", "monthly_pass"]),
                            "amount": rng.choice([1.9, 6.0, 65.0]), "channel": "app"}))
    for start in range(0, len(events), 1000):
        await ingest_events(db, ctx, events[start:start + 1000], source="demo")


async def load_segment_and_stages(db: Database, ctx: TenantContext) -> None:
    frequent = msgspec.convert({
        "name": "Frequent riders", "refresh_minutes": 60,
        "description": "8 or more validations in the last 90 days (demo)",
        "definition": {"type": "event", "event": "trip_validated", "value": 8,
                       "window": {"last_days": 90}}}, SegmentCreate)
    segment = await create_segment(db, ctx, frequent)
    await refresh_segment(db, ctx, segment.id)
    await evaluate(db, ctx, mode="full")
