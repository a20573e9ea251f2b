"""Calendar and rolling windows, quiet hours, local send times: Python and SQL agree, in
zones with DST transitions (and odd ones), and the windows have the properties caps need."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.pressure.schemas import CapRule
from core.pressure.windows import (
    calendar_start,
    in_window,
    is_quiet,
    local,
    local_send_time,
    localize,
    next_allowed,
    quiet_until,
    window_bounds,
    zone,
)

ZONES = ["Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
         "America/Havana", "Pacific/Chatham", "Asia/Beirut", "America/Santiago",
         "Pacific/Apia", "UTC"]
# 2025-2028, with many instants near DST transitions.
instants = st.one_of(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                 timezones=st.just(UTC)),
    st.sampled_from([datetime(*t, tzinfo=UTC) for t in (
        (2026, 3, 29, 0, 30), (2026, 3, 29, 1, 0), (2026, 10, 25, 0, 59), (2026, 10, 25, 1, 0),
        (2026, 3, 8, 7, 0), (2026, 11, 1, 5, 30), (2026, 11, 1, 6, 30), (2026, 4, 4, 16, 0))]),
)
zones = st.sampled_from(ZONES)
times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 59]))
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(at=instants, tz=zones, kind=st.sampled_from(["day", "week", "month"]))
def test_calendar_window_contains_the_instant_and_tiles(at, tz, kind):
    rule = CapRule(id="r", max=1, window=kind)
    start, end = window_bounds(rule, at, tz)
    assert start <= at < end and in_window(rule, (start, end), at)
    # the next window starts where this one ends; the previous one ends where it starts
    assert window_bounds(rule, end, tz)[0] == end
    assert window_bounds(rule, start - timedelta(microseconds=1), tz)[1] == start
    hours = (end - start) / timedelta(hours=1)
    bounds = {"day": (22, 26), "week": (7 * 24 - 2, 7 * 24 + 2),
              "month": (28 * 24 - 2, 31 * 24 + 2)}
    assert bounds[kind][0] <= hours <= bounds[kind][1]
    wall = local(start, tz)
    assert calendar_start(kind, at, tz) <= wall < calendar_start(kind, at, tz) + timedelta(hours=2)


def test_paris_days_around_dst_are_23_and_25_hours():
    rule = CapRule(id="r", max=1, window="day")
    spring = window_bounds(rule, datetime(2026, 3, 29, 12, tzinfo=UTC), "Europe/Paris")
    autumn = window_bounds(rule, datetime(2026, 10, 25, 12, tzinfo=UTC), "Europe/Paris")
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)
    assert spring[0] == datetime(2026, 3, 28, 23, tzinfo=UTC)
    week = window_bounds(CapRule(id="w", max=1, window="week"),
                         datetime(2026, 3, 29, 12, tzinfo=UTC), "Europe/Paris")
    assert week == (datetime(2026, 3, 22, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))
    # the same instant is in different days for customers in different zones
    late = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)
    assert window_bounds(rule, late, "Europe/Paris")[0] == datetime(2026, 6, 1, 22, tzinfo=UTC)
    assert window_bounds(rule, late, "America/New_York")[0] == datetime(2026, 6, 1, 4, tzinfo=UTC)


@SETTINGS
@given(at=instants, days=st.integers(1, 30))
def test_rolling_span_covers_every_window_containing_the_instant(at, days):
    rule = CapRule(id="r", max=1, window="rolling", days=days)
    start, end = window_bounds(rule, at, "UTC")
    assert end - start == timedelta(days=2 * days)
    for offset in (timedelta(0), timedelta(days=days) - timedelta(seconds=1)):
        window_start = at - offset  # a window [s, s + days) containing `at`
        assert start < window_start and window_start + timedelta(days=days) <= end


@SETTINGS
@given(at=instants, tz=zones, start=times, end=times)
def test_quiet_until_is_the_first_allowed_instant(at, tz, start, end):
    until = quiet_until(at, tz, start, end)
    assert until >= at
    assert not is_quiet(until, tz, start, end) or start == end
    if until > at:
        assert is_quiet(at, tz, start, end)
        # nothing allowed strictly between: one minute before is still quiet (or before
        # `at`), except right after a DST change, where an end time that happens twice
        # resolves to its later occurrence (never early; at most an hour late)
        before = until - timedelta(minutes=1)
        shifted = (until.astimezone(zone(tz)).utcoffset()
                   != (until - timedelta(hours=1, minutes=1)).astimezone(zone(tz)).utcoffset())
        assert before < at or is_quiet(before, tz, start, end) or shifted


@SETTINGS
@given(at=instants, tz=zones, a=st.tuples(times, times), b=st.tuples(times, times))
def test_next_allowed_respects_both_tenant_and_customer_quiet_hours(at, tz, a, b):
    t = next_allowed(at, tz, [a, b])
    if t is None:  # the two ranges cover the whole day
        assert all(is_quiet(at + timedelta(minutes=15 * i), tz, *a)
                   or is_quiet(at + timedelta(minutes=15 * i), tz, *b) for i in range(96))
        return
    assert t >= at and not is_quiet(t, tz, *a) and not is_quiet(t, tz, *b)


def test_local_send_time_in_dst_gap_and_fold_takes_the_later_instant():
    # 02:30 does not exist in Paris on 2026-03-29, and exists twice on 2026-10-25
    gap = local_send_time(datetime(2026, 3, 29).date(), time(2, 30), "Europe/Paris")
    fold = local_send_time(datetime(2026, 10, 25).date(), time(2, 30), "Europe/Paris")
    assert gap == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert fold == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert localize(datetime(2026, 7, 1, 10), "Asia/Kolkata") == datetime(2026, 7, 1, 4, 30,
                                                                         tzinfo=UTC)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cases=st.lists(st.tuples(instants, zones, times, times,
                                st.sampled_from(["day", "week", "month"])),
                      min_size=1, max_size=20))
async def test_sql_functions_agree_with_python(db, cases):
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            """select relais_quiet_until(u.at, u.tz, u.qs, u.qe) as quiet,
                      relais_window_start(u.kind, u.at, u.tz) as key,
                      relais_window_end(u.kind, relais_window_start(u.kind, u.at, u.tz))
                          as next_key,
                      (u.at at time zone u.tz)::date + u.qs as wall,
                      ((u.at at time zone u.tz)::date + u.qs) at time zone u.tz as wall_at
               from unnest($1::timestamptz[], $2::text[], $3::time[], $4::time[], $5::text[])
                    with ordinality as u(at, tz, qs, qe, kind, n) order by n""",
            *[list(x) for x in zip(*cases, strict=True)])
    for (at, tz, qs, qe, kind), row in zip(cases, rows, strict=True):
        assert row["quiet"] == quiet_until(at, tz, qs, qe)
        assert row["key"] == calendar_start(kind, at, tz)
        end = window_bounds(CapRule(id="r", max=1, window=kind), at, tz)[1]
        assert row["next_key"] == calendar_start(kind, end, tz)
        assert row["wall_at"] == localize(row["wall"], tz)
