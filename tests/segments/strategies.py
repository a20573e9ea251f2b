"""Random segment definitions over the vocabulary of tests/segments/dataset.py."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st

from core.segments import definition as d
from tests.segments.dataset import COUNTRIES, EDGE_DAYS, LINES, NOW, PRODUCTS, STAGES

_days = st.sampled_from(EDGE_DAYS)
_ORDERED = ["eq", "ne", "lt", "lte", "gt", "gte"]


def _field() -> st.SearchStrategy[d.FieldCondition]:
    F = d.FieldCondition
    return st.one_of(
        st.builds(F, field=st.just("country"), op=st.sampled_from(["eq", "ne"]),
                  value=st.sampled_from(COUNTRIES)),
        st.builds(F, field=st.just("country"), op=st.sampled_from(["in", "not_in"]),
                  value=st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=2)),
        st.builds(F, field=st.just("first_name"),
                  op=st.sampled_from([*_ORDERED, "contains", "starts_with"]),
                  value=st.sampled_from(["a", "An", "Zo", "b", ""])),
        st.builds(F, field=st.sampled_from(["first_name", "country", "birth_date", "score",
                                            "vip", "loyalty_tier", "member_since"]),
                  op=st.sampled_from(["is_set", "is_not_set"])),
        st.builds(F, field=st.just("birth_date"), op=st.sampled_from(_ORDERED),
                  value=st.sampled_from(["1960-05-01", "1990-01-01", "2000-02-29"])),
        st.builds(F, field=st.just("birth_date"), op=st.just("between"),
                  value=st.just(["1980-01-01", "2000-01-01"])),
        st.builds(F, field=st.just("created_at"), op=st.sampled_from(_ORDERED),
                  value=_days.map(lambda x: (NOW - timedelta(days=x)).isoformat())),
        st.builds(F, field=st.just("loyalty_tier"), op=st.sampled_from(["eq", "ne"]),
                  value=st.sampled_from(["bronze", "gold"])),
        st.builds(F, field=st.just("loyalty_tier"), op=st.sampled_from(["lt", "gte"]),
                  value=st.sampled_from(["gold", "silver"])),
        st.builds(F, field=st.just("score"), op=st.sampled_from(_ORDERED),
                  value=st.sampled_from([0, 1.5, 10, 20])),
        st.builds(F, field=st.just("score"), op=st.sampled_from(["in", "not_in"]),
                  value=st.lists(st.sampled_from([0, 10, 42]), min_size=1, max_size=2)),
        st.builds(F, field=st.just("vip"), op=st.sampled_from(["eq", "ne"]),
                  value=st.booleans()),
        st.builds(F, field=st.just("member_since"), op=st.sampled_from(_ORDERED),
                  value=st.sampled_from(["2021-01-01", "2024-06-15"])),
    )


def _window() -> st.SearchStrategy[d.Window | None]:
    return st.one_of(
        st.none(),
        st.builds(d.Window, last_days=_days),
        st.builds(lambda a, b: d.Window(last_days=max(a, b), before_days=min(a, b)),
                  _days, _days).filter(lambda w: w.before_days < w.last_days),
        st.builds(lambda a, b: d.Window(since=NOW - timedelta(days=max(a, b)),
                                        until=NOW - timedelta(days=min(a, b))),
                  _days, _days).filter(lambda w: w.since < w.until),
    )


def _where(event: str) -> st.SearchStrategy[list[d.PropertyFilter]]:
    P = d.PropertyFilter
    if event == "trip_validated":
        options = st.one_of(
            st.builds(P, property=st.just("line"), op=st.sampled_from(["eq", "ne"]),
                      value=st.sampled_from(LINES)),
            st.builds(P, property=st.just("line"), op=st.just("in"),
                      value=st.lists(st.sampled_from(LINES), min_size=1, max_size=2)),
            st.builds(P, property=st.just("line"), op=st.sampled_from(["is_set",
                                                                       "is_not_set"])))
    elif event == "ticket_purchased":
        options = st.one_of(
            st.builds(P, property=st.just("amount"), op=st.sampled_from(_ORDERED),
                      value=st.sampled_from([0, 5.5, 10, 20])),
            st.builds(P, property=st.just("product"), op=st.sampled_from(["eq", "ne"]),
                      value=st.sampled_from(PRODUCTS)))
    else:
        return st.just([])
    return st.lists(options, max_size=2)


@st.composite
def _event(draw) -> d.EventCondition:
    event = draw(st.sampled_from(["trip_validated", "ticket_purchased", "app_opened"]))
    measure = draw(st.sampled_from(["count", "sum", "avg", "min", "max", "first", "last",
                                    "days_since_first", "days_since_last"]
                                   if event == "ticket_purchased" else
                                   ["count", "first", "last", "days_since_last"]))
    op = draw(st.sampled_from([*_ORDERED, "between"]))
    if measure == "count":
        values = st.integers(0, 4)
    elif measure in ("first", "last"):
        values = _days.map(lambda x: NOW - timedelta(days=x))
    elif measure.startswith("days_since"):
        values = _days
    else:
        values = st.sampled_from([0, 5.5, 10, 12, 30])
    if op == "between":
        low, high = sorted([draw(values), draw(values)])
        value = [low, high]
    else:
        value = draw(values)
    return d.EventCondition(event=event, measure=measure, op=op, value=value,
                            property="amount" if measure in ("sum", "avg", "min", "max")
                            else None, window=draw(_window()), where=draw(_where(event)))


def _trend() -> st.SearchStrategy[d.TrendCondition]:
    return st.builds(d.TrendCondition, event=st.sampled_from(["trip_validated", "app_opened"]),
                     recent_days=st.sampled_from([7, 30]),
                     baseline_days=st.sampled_from([30, 90]),
                     op=st.sampled_from(["lt", "gte"]), ratio=st.sampled_from([0.5, 1, 2]))


def _band() -> st.SearchStrategy[d.ScoreRange | None]:
    return st.one_of(st.none(), st.tuples(st.integers(1, 5), st.integers(1, 5)).map(
        lambda t: d.ScoreRange(min=min(t), max=max(t))))


def _rfm() -> st.SearchStrategy[d.RfmCondition]:
    return st.builds(
        d.RfmCondition, event=st.just("ticket_purchased"),
        recency_days=st.just([7, 30, 90, 180]), frequency_counts=st.just([1, 2, 3, 5]),
        monetary_property=st.just("amount"), monetary_amounts=st.just([5, 10, 20, 50]),
        window=_window(), recency=_band(), frequency=_band(), monetary=_band())


def leaves() -> st.SearchStrategy[d.Condition]:
    return st.one_of(
        _field(),
        st.builds(d.IdentifierCondition, kind=st.sampled_from(["email", "phone",
                                                               "loyalty_id"]),
                  present=st.booleans()),
        st.builds(d.ConsentCondition, channel=st.sampled_from(["email", "sms"]),
                  purpose=st.sampled_from(["marketing", "loyalty"]),
                  status=st.sampled_from(["granted", "denied", "withdrawn", "unknown"])),
        _event(), _trend(), _rfm(),
        st.builds(d.StageCondition, stages=st.lists(st.sampled_from(STAGES), min_size=1,
                                                    max_size=2)),
        st.builds(lambda a, b, seed: d.BucketCondition(min=min(a, b), max=max(a, b),
                                                       seed=seed),
                  st.integers(0, 9999), st.integers(0, 9999), st.sampled_from(["", "s1"])),
        st.just(d.Everyone()),
    )


def definitions() -> st.SearchStrategy[d.Condition]:
    return st.recursive(
        leaves(),
        lambda children: st.one_of(
            st.builds(d.And, conditions=st.lists(children, min_size=1, max_size=3)),
            st.builds(d.Or, conditions=st.lists(children, min_size=1, max_size=3)),
            st.builds(d.Not, condition=children)),
        max_leaves=5)


def event_driven() -> st.SearchStrategy[d.Condition]:
    """Conjunctions of event conditions (and identifier or consent tests), which the
    compiler may drive from the events aggregate instead of the profiles."""
    return st.builds(d.And, conditions=st.lists(st.one_of(
        _event(), _event(), _rfm(), _trend(),
        st.builds(d.IdentifierCondition, kind=st.sampled_from(["email", "phone"]),
                  present=st.booleans()),
        st.builds(d.ConsentCondition, channel=st.just("email"),
                  purpose=st.just("marketing"),
                  status=st.sampled_from(["granted", "unknown"]))), min_size=1, max_size=3))
