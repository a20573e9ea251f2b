"""Customers, events, consents, a segment, lifecycle stages, a holdout group and a draft
newsletter for a demo tenant, through the same services the API uses (so the demo exercises
identity resolution, the tracking plan, the segment compiler and campaign planning for
real). Deterministic: the same seed gives the same people."""

from __future__ import annotations

import random
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from core.campaigns.schemas import CampaignCreate
from core.campaigns.service import create_campaign
from core.consents.schemas import ConsentChange, ConsentChanges
from core.consents.service import set_consents
from core.db import Database
from core.errors import NotFound
from core.events.schemas import EventIn, Identifiers, IdentifyIn
from core.events.service import identify, ingest_events
from core.holdout.schemas import HoldoutCreate
from core.holdout.service import create_group
from core.lifecycle.service import evaluate
from core.segments.membership import refresh_segment
from core.segments.schemas import SegmentCreate
from core.segments.service import create_segment
from core.templates import service as templates
from core.templates.schemas import Content, HqTemplateCreate
from tenants.context import SYSTEM, HqContext, TenantContext

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
    await load_newsletter(db, ctx, segment.id)


# HQ's newsletter templates, shared by every demo tenant (created by the first one).
NEWSLETTER = {
    "email": HqTemplateCreate(
        id="demo-newsletter-email", name="Monthly newsletter (email)", channel="email",
        default_locale="en-GB", contents={
            "en-GB": Content(subject="{{ tenant.name }}: what's new this month",
                             text="Hello {{ customer.first_name }}, here is what changes on "
                                  "your lines this month."),
            "fr-FR": Content(subject="{{ tenant.name }} : les nouveautés du mois",
                             text="Bonjour {{ customer.first_name }}, voici ce qui change "
                                  "sur vos lignes ce mois-ci.")}),
    "sms": HqTemplateCreate(
        id="demo-newsletter-sms", name="Monthly newsletter (SMS)", channel="sms",
        default_locale="en-GB", contents={
            "en-GB": Content(text="{{ tenant.name }}: this month's changes on your lines."),
            "fr-FR": Content(text="{{ tenant.name }} : les changements du mois sur vos "
                                  "lignes.")}),
}


async def load_newsletter(db: Database, ctx: TenantContext, segment_id: str) -> None:
    """A 5% universal holdout group and a draft newsletter to the segment, email first then
    SMS: `simulate` shows how consent, holdout and caps shape its audience."""
    for template in NEWSLETTER.values():
        try:
            await templates.get_template(db, template.id)
        except NotFound:
            await templates.create_template(db, HqContext(actor=SYSTEM), template)
    await create_group(db, ctx, HoldoutCreate(percent=5))
    await create_campaign(db, ctx, msgspec.convert({
        "name": "Monthly newsletter", "category": "marketing", "purpose": "marketing",
        "segment_id": segment_id, "channels": ["email", "sms"], "priority": 40,
        "templates": {channel: t.id for channel, t in NEWSLETTER.items()},
        "schedule": {"kind": "now"}}, CampaignCreate))
