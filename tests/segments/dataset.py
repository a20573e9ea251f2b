"""Small random datasets for the compiler-vs-evaluator property test, and loading them.

Rows are inserted with plain SQL inside a transaction that is rolled back after each
example: hypothesis runs many examples, and the ingestion service commits its own
transactions (it is exercised by its own tests and by tests/segments/test_service.py).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import strategies as st

from core.db import Connection
from tests.segments.evaluator import Customer, Event

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# Days used both for event times and windows, so window edges are hit exactly.
EDGE_DAYS = [7, 30, 90, 180]
EXTENSION_FIELDS = {
    "loyalty_tier": ("enum", ["bronze", "silver", "gold"]),
    "score": ("number", None),
    "vip": ("boolean", None),
    "member_since": ("date", None),
}
COUNTRIES = ["FR", "MA", "US"]
STAGES = ["new", "active", "loyal", "fragile"]
LINES = ["T1", "T2", "B10"]
PRODUCTS = ["single", "day_pass", "monthly"]

_days = st.one_of(st.sampled_from(EDGE_DAYS), st.sampled_from(EDGE_DAYS),
                  st.sampled_from([0.5, 29.999, 45, 120, 365]), st.floats(0, 400, allow_nan=False))
_when = _days.map(lambda days: NOW - timedelta(days=days))


def _event() -> st.SearchStrategy[Event]:
    trip = st.builds(
        lambda when, line: Event("trip_validated", when, {} if line is None else {"line": line}),
        _when, st.one_of(st.none(), st.sampled_from([*LINES, 7])))
    purchase = st.builds(
        lambda when, amount, product: Event(
            "ticket_purchased", when,
            {k: v for k, v in (("amount", amount), ("product", product)) if v is not None}),
        _when, st.one_of(st.none(), st.sampled_from([0, 2, 5.5, 10, 12, 25, 60, "12"])),
        st.one_of(st.none(), st.sampled_from(PRODUCTS)))
    opened = st.builds(lambda when: Event("app_opened", when, {}), _when)
    return st.one_of(trip, purchase, opened)


def _attributes() -> st.SearchStrategy[dict]:
    values = {
        "loyalty_tier": st.sampled_from(["bronze", "silver", "gold", 3]),
        "score": st.sampled_from([0, 1.5, 10, 42, "10", True]),
        "vip": st.sampled_from([True, False, "yes"]),
        "member_since": st.sampled_from(["2020-01-01", "2024-06-15", "2026-05-31"]),
    }
    return st.fixed_dictionaries({}, optional=values)


@st.composite
def customers(draw) -> list[Customer]:
    out = []
    for _ in range(draw(st.integers(0, 10))):
        fields = {
            "country": draw(st.one_of(st.none(), st.sampled_from(COUNTRIES))),
            "first_name": draw(st.one_of(st.none(), st.sampled_from(["Ana", "anaïs", "Bob",
                                                                     "Zoé", ""]))),
            "birth_date": draw(st.one_of(st.none(), st.sampled_from(
                [date(1960, 5, 1), date(1990, 1, 1), date(2005, 12, 31)]))),
            "stage": draw(st.one_of(st.none(), st.sampled_from(STAGES))),
            "created_at": draw(_when),
        }
        out.append(Customer(
            id=str(uuid.UUID(int=draw(st.integers(0, 2**64)))),
            fields=fields, attributes=draw(_attributes()),
            events=draw(st.lists(_event(), max_size=8)),
            identifiers=set(draw(st.lists(st.sampled_from(["email", "phone", "loyalty_id"]),
                                          max_size=2))),
            consents={(ch, p): s for ch, p, s in draw(st.lists(st.tuples(
                st.sampled_from(["email", "sms"]), st.sampled_from(["marketing", "loyalty"]),
                st.sampled_from(["granted", "denied", "withdrawn"])), max_size=3))},
            gone=draw(st.sampled_from([None, None, None, None, "merged", "erased"])),
        ))
    unique = {c.id: c for c in out}
    return list(unique.values())


# Where merged profiles went (not one of the dataset's: only "merged or not" matters here).
_SURVIVOR = uuid.UUID(int=2**100)


async def load(conn: Connection, tenant_id: str, people: list[Customer]) -> None:
    await conn.executemany(
        """insert into customers (tenant_id, id, country, first_name, birth_date, stage,
                                  attributes, created_at, merged_into, erased_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        [(tenant_id, uuid.UUID(c.id), c.fields["country"], c.fields["first_name"],
          c.fields["birth_date"], c.fields["stage"], c.attributes, c.fields["created_at"],
          _SURVIVOR if c.gone == "merged" else None, NOW if c.gone == "erased" else None)
         for c in people])
    await conn.executemany(
        """insert into events (tenant_id, message_id, customer_id, type, occurred_at,
                               properties, source)
           values ($1, $2, $3, $4, $5, $6, 'test')""",
        [(tenant_id, f"{c.id}:{i}", uuid.UUID(c.id), e.type, e.occurred_at, e.properties)
         for c in people for i, e in enumerate(c.events)])
    await conn.executemany(
        """insert into identifiers (tenant_id, kind, value, customer_id, source)
           values ($1, $2, $3, $4, 'test')""",
        [(tenant_id, kind, f"{kind}-{c.id}", uuid.UUID(c.id))
         for c in people for kind in c.identifiers])
    await conn.executemany(
        """insert into consents (tenant_id, customer_id, channel, purpose, status,
                                 legal_basis, source)
           values ($1, $2, $3, $4, $5, 'consent', 'test')""",
        [(tenant_id, uuid.UUID(c.id), ch, p, s)
         for c in people for (ch, p), s in c.consents.items()])
