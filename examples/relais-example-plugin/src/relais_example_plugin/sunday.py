"""A rule overlay: no marketing on Sundays, in the customer's own time zone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec

from plugins import EligibilityCandidate, EligibilityVerdict, RuleType


class SundayRestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # veto: the message is dropped (with the reason); delay: sent on Monday at `resume_at`.
    action: Literal["veto", "delay"] = "delay"
    categories: list[str] = msgspec.field(default_factory=lambda: ["marketing"])
    resume_at: Annotated[str, msgspec.Meta(pattern=r"^\d{2}:\d{2}$")] = "09:00"


SUNDAY_REST = RuleType(name="sunday_rest", config=SundayRestConfig,
                       description="No marketing on Sundays (local time): veto or delay")


def check_sunday_rest(candidates: Sequence[EligibilityCandidate],
                      config: SundayRestConfig) -> list[EligibilityVerdict]:
    verdicts = []
    for candidate in candidates:
        if candidate.category not in config.categories:
            continue
        local = candidate.scheduled_at.astimezone(ZoneInfo(candidate.timezone))
        if local.weekday() != 6:
            continue
        until = None
        if config.action == "delay":
            monday = local.date() + timedelta(days=1)
            hour, minute = map(int, config.resume_at.split(":"))
            until = datetime.combine(monday, time(hour, minute), local.tzinfo)
        verdicts.append(EligibilityVerdict(
            message_id=candidate.message_id, action=config.action, until=until,
            reason="sunday rest: no marketing on Sundays", rule=SUNDAY_REST.name))
    return verdicts
