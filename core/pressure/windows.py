"""Calendar and rolling windows, quiet hours and local send times, in Python.

The planner computes the same things in SQL (`relais_window_start`, `relais_quiet_until`,
`(date + time) at time zone tz`); these functions are the reference the property tests
hold the SQL to, and what the API uses to explain a customer's pressure.

Wall-clock times that do not exist (spring forward) or exist twice (fall back) resolve to
the later instant, exactly as PostgreSQL's `timestamp at time zone` does: "not before
08:00" then never means an hour early.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from core.pressure.schemas import CapRule

ROLLING_UNIT = timedelta(hours=24)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def localize(naive: datetime, tz: str) -> datetime:
    """The instant a local wall-clock time denotes (UTC), PostgreSQL's way: of the two
    candidate offsets around a transition, the later instant."""
    z = zone(tz)
    first = naive.replace(tzinfo=z, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=z, fold=1).astimezone(UTC)
    return max(first, second)


def local(at: datetime, tz: str) -> datetime:
    return at.astimezone(zone(tz)).replace(tzinfo=None)


def boundary(naive: datetime, tz: str) -> datetime:
    """The instant a calendar period starts: the first moment its local start exists (the
    first of two local midnights on a fall-back night, the transition itself when
    midnight is skipped). Periods are identified by their local start, so this is only
    for showing them; consecutive periods tile time exactly."""
    return naive.replace(tzinfo=zone(tz), fold=0).astimezone(UTC)


def calendar_start(kind: str, at: datetime, tz: str) -> datetime:
    """Local start of the calendar day/week/month containing `at`, as a naive local time."""
    wall = local(at, tz)
    day = datetime.combine(wall.date(), time())
    if kind == "day":
        return day
    if kind == "week":
        return day - timedelta(days=wall.weekday())
    if kind == "month":
        return day.replace(day=1)
    raise ValueError(f"not a calendar window: {kind}")


def _next_calendar(kind: str, start: datetime) -> datetime:
    if kind == "day":
        return start + timedelta(days=1)
    if kind == "week":
        return start + timedelta(days=7)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month)


def window_bounds(rule: CapRule, at: datetime, tz: str) -> tuple[datetime, datetime]:
    """The period a message sent at `at` is checked against.

    Calendar rules: the day/week/month containing `at` in zone `tz` (identified by
    `calendar_start`; these are its bounds, [start, end)). Rolling rules of N days: the
    span (at - N days, at + N days). Every N-day window containing `at` lies inside that
    span, so admitting a message only when the span has room never lets any rolling
    window exceed the cap (conservative: "better not to contact than to annoy")."""
    if rule.window == "rolling":
        span = ROLLING_UNIT * (rule.days or 1)
        return at - span, at + span
    start = calendar_start(rule.window, at, tz)
    return boundary(start, tz), boundary(_next_calendar(rule.window, start), tz)


def in_window(rule: CapRule, bounds: tuple[datetime, datetime], t: datetime) -> bool:
    start, end = bounds
    if rule.window == "rolling":
        return start < t < end
    return start <= t < end


def _minute_time(minute: int) -> time:
    return time(minute // 60, minute % 60)


def quiet_until(at: datetime, tz: str, start: time | None, end: time | None) -> datetime:
    """`at` if it is outside the quiet hours [start, end) (local, may wrap midnight), else
    the first instant after them. start == end (or None) means no quiet hours."""
    if start is None or end is None or start == end:
        return at
    wall = local(at, tz)
    tod = wall.time()
    today = wall.date()
    if start < end:
        if start <= tod < end:
            return max(at, localize(datetime.combine(today, end), tz))
        return at
    if tod >= start:
        return max(at, localize(datetime.combine(today + timedelta(days=1), end), tz))
    if tod < end:
        return max(at, localize(datetime.combine(today, end), tz))
    return at


def is_quiet(at: datetime, tz: str, start: time | None, end: time | None) -> bool:
    return quiet_until(at, tz, start, end) != at


QuietHours = tuple[time | None, time | None]


def next_allowed(at: datetime, tz: str, quiet: list[QuietHours]) -> datetime | None:
    """First instant ≥ `at` outside every quiet-hours range, or None when together they
    cover the whole day (the customer can never be reached: abort). Three passes are
    enough for two ranges; the planner does the same three passes in SQL."""
    t = at
    for _ in range(3):
        for start, end in quiet:
            t = quiet_until(t, tz, start, end)
    if any(is_quiet(t, tz, s, e) for s, e in quiet):
        return None
    return t


def minutes_to_time(minute: int) -> time:
    return _minute_time(minute)


def local_send_time(day: date, at: time, tz: str) -> datetime:
    """"At HH:MM in each customer's local time" on `day`."""
    return localize(datetime.combine(day, at), tz)
