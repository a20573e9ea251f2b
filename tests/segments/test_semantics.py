"""Hand-picked edge cases of the semantics, where random data rarely lands: window bounds,
'days since' limits, missing values under `not`, values of the wrong JSON type."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from core.segments import definition as d
from tests.segments.dataset import NOW
from tests.segments.evaluator import Customer, Evaluator, Event
from tests.segments.test_compiler_property import _members_in_sql


def _person(events: list[Event] = (), **attributes) -> Customer:
    return Customer(id=str(uuid.uuid4()), attributes=attributes, events=list(events),
                    fields={"country": None, "first_name": None, "birth_date": None,
                            "stage": None, "created_at": NOW})


def _trip(days: float, **props) -> Event:
    return Event("trip_validated", NOW - timedelta(days=days), {"line": "T1", **props})


ON_EDGE, INSIDE, OUTSIDE = _person([_trip(30)]), _person([_trip(29.9)]), _person([_trip(30.1)])
NOTHING = _person()
CASES = [
    # last_days includes its start; before_days excludes its end
    (d.EventCondition(event="trip_validated", value=1, window=d.Window(last_days=30)),
     [ON_EDGE, INSIDE, OUTSIDE], {0, 1}),
    (d.EventCondition(event="trip_validated", value=1, window=d.Window(before_days=30)),
     [ON_EDGE, INSIDE, OUTSIDE], {2}),
    # days_since_last > 30 is strict; >= takes the edge
    (d.EventCondition(event="trip_validated", measure="days_since_last", op="gt", value=30),
     [ON_EDGE, INSIDE, OUTSIDE, NOTHING], {2}),
    (d.EventCondition(event="trip_validated", measure="days_since_last", op="gte", value=30),
     [ON_EDGE, INSIDE, OUTSIDE, NOTHING], {0, 2}),
    # no events: count is 0 (so "< 1" holds), last is missing (so neither "< x" nor its not)
    (d.EventCondition(event="trip_validated", op="lt", value=1), [NOTHING, INSIDE], {0}),
    (d.Not(d.EventCondition(event="trip_validated", measure="days_since_last", op="lt",
                            value=1000)), [NOTHING, INSIDE], {0}),
    # a property of the wrong JSON type never matches a typed comparison
    (d.EventCondition(event="trip_validated", value=1,
                      where=[d.PropertyFilter(property="line", value="7")]),
     [_person([_trip(1, line=7)]), _person([_trip(1, line="7")])], {1}),
    # missing extension field: every comparison false, `not` true
    (d.Not(d.FieldCondition(field="score", op="gt", value=1)),
     [_person(score=5), _person(), _person(score="5")], {1, 2}),
    (d.FieldCondition(field="score", op="is_set"), [_person(score=5), _person(score="x"),
                                                    _person()], {0}),
]


@pytest.mark.parametrize(("node", "people", "expected"), CASES)
async def test_edge_cases_agree_and_match_the_documented_semantics(db, seg_world, node,
                                                                   people, expected):
    people = [Customer(str(uuid.uuid4()), p.fields, p.attributes, p.events) for p in people]
    want = {people[i].id for i in expected}
    assert Evaluator(seg_world.vocab, NOW).members(node, people) == want
    assert await _members_in_sql(db, seg_world, people, node) == want
