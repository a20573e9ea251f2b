"""The plugin's own unit tests: pure functions, no database (run with relais installed)."""

import uuid
from datetime import UTC, datetime

from relais_example_plugin.sunday import SundayRestConfig, check_sunday_rest

from plugins import EligibilityCandidate


def candidate(when: datetime, category: str = "marketing") -> EligibilityCandidate:
    return EligibilityCandidate(message_id="m", tenant_id="t", customer_id=uuid.uuid4(),
                                channel="email", category=category, scheduled_at=when,
                                timezone="Europe/Paris")


def test_sunday_marketing_is_delayed_to_monday_morning():
    sunday = datetime(2026, 11, 29, 10, tzinfo=UTC)
    [verdict] = check_sunday_rest([candidate(sunday)], SundayRestConfig())
    assert verdict.action == "delay"
    assert verdict.until.isoformat() == "2026-11-30T09:00:00+01:00"


def test_other_days_and_categories_pass():
    assert check_sunday_rest([candidate(datetime(2026, 11, 30, 10, tzinfo=UTC))],
                             SundayRestConfig()) == []
    sunday = datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert check_sunday_rest([candidate(sunday, "traffic_info")], SundayRestConfig()) == []
