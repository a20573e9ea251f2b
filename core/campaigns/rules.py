"""Checks on a campaign's definition that need no database, and schedule arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from core.campaigns.schemas import CampaignFields, Schedule
from core.errors import InvalidInput
from core.pressure.schemas import PressurePolicy
from core.pressure.windows import localize

# The earliest and latest offsets any time zone has: "10:00 local" happens between
# 10:00 at UTC+14 and 10:00 at UTC-12.
EARLIEST_ZONE, LATEST_ZONE = "Etc/GMT-14", "Etc/GMT+12"
# Campaigns are planned this long before their first send: the audience is fresh enough,
# and their planned messages occupy their cap slots early enough for arbitration.
PLAN_AHEAD = timedelta(hours=24)
# A schedule this much in the past is refused; less is "now".
PAST_TOLERANCE = timedelta(minutes=5)


def check_fields(data: CampaignFields) -> None:
    if len(set(data.channels)) != len(data.channels):
        raise InvalidInput("a channel is listed twice", field="channels")
    for channel in data.channels:
        if channel not in data.templates:
            raise InvalidInput(f"no template for channel {channel!r}",
                               field=f"templates.{channel}")
    for channel in data.templates:
        if channel not in data.channels:
            raise InvalidInput(f"{channel!r} is not one of the campaign's channels",
                               field=f"templates.{channel}")
    check_schedule(data.schedule)
    if data.variants:
        names = [v.name for v in data.variants]
        if len(set(names)) != len(names):
            raise InvalidInput("variant names must be unique", field="variants")
        if sum(v.split for v in data.variants) != 100:
            raise InvalidInput("variant splits must add up to 100", field="variants")
        for i, variant in enumerate(data.variants):
            for channel in variant.templates:
                if channel not in data.channels:
                    raise InvalidInput(f"{channel!r} is not one of the campaign's channels",
                                       field=f"variants[{i}].templates.{channel}")
    if data.bypass_quiet_hours and data.category != "alert":
        raise InvalidInput("only alert campaigns may bypass quiet hours",
                           field="bypass_quiet_hours")
    if data.category == "transactional" and data.purpose != "transactional":
        raise InvalidInput("a transactional campaign has the transactional purpose",
                           field="purpose")


def check_governance(data: CampaignFields, policy: PressurePolicy) -> None:
    """What the tenant's effective pressure policy (HQ ⊕ overlay) allows."""
    if data.pressure_exempt and not policy.campaign_exemption_allowed:
        raise InvalidInput("HQ governance does not allow exempting a campaign from the "
                           "pressure rules", field="pressure_exempt")
    if data.bypass_quiet_hours and not policy.alert_bypass_quiet_hours:
        raise InvalidInput("HQ governance does not allow alerts to bypass quiet hours",
                           field="bypass_quiet_hours")


def check_schedule(schedule: Schedule) -> None:
    if schedule.kind == "now":
        if schedule.at or schedule.date or schedule.time:
            raise InvalidInput("a `now` schedule takes no date or time", field="schedule")
    elif schedule.kind == "at":
        if schedule.at is None:
            raise InvalidInput("an `at` schedule needs `at`", field="schedule.at")
        if schedule.date or schedule.time:
            raise InvalidInput("an `at` schedule takes `at` only", field="schedule")
    else:
        if schedule.date is None:
            raise InvalidInput("a `local_time` schedule needs `date`", field="schedule.date")
        if schedule.time is None:
            raise InvalidInput("a `local_time` schedule needs `time`", field="schedule.time")
        if schedule.at:
            raise InvalidInput("a `local_time` schedule takes `date` and `time`",
                               field="schedule.at")


def local_time(schedule: Schedule) -> time:
    hours, minutes = (schedule.time or "00:00").split(":")
    return time(int(hours), int(minutes))


def first_send(schedule: Schedule, now: datetime) -> datetime:
    """The earliest instant any recipient may be sent to."""
    if schedule.kind == "now":
        return now
    if schedule.kind == "at":
        assert schedule.at is not None
        return schedule.at.astimezone(UTC)
    assert schedule.date is not None
    return localize(datetime.combine(schedule.date, local_time(schedule)), EARLIEST_ZONE)


def last_send(schedule: Schedule, now: datetime) -> datetime:
    if schedule.kind != "local_time":
        return first_send(schedule, now)
    assert schedule.date is not None
    return localize(datetime.combine(schedule.date, local_time(schedule)), LATEST_ZONE)


def check_not_past(schedule: Schedule, now: datetime) -> None:
    if schedule.kind != "now" and last_send(schedule, now) < now - PAST_TOLERANCE:
        raise InvalidInput("the schedule is in the past", field="schedule")
