"""Pressure policy: the HQ definition (an overlay kind) and the resolved policy a plan uses.

The definition HQ publishes names its tunable values with `{"param": "name"}`; each version
declares those parameters with their governance (locked / overridable / bounded), and a
tenant's overlay moves them within HQ's bounds. `core.pressure.policy` resolves the three
into a `PressurePolicy` of plain values.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Category = Literal["marketing", "service", "alert", "transactional"]
CATEGORIES: tuple[str, ...] = ("marketing", "service", "alert", "transactional")
WindowKind = Literal["day", "week", "month", "rolling"]
QuietAction = Literal["delay", "abort"]
ANY_CHANNEL = "any"
MAX_RULES = 10
MINUTES_PER_DAY = 1440


class ParamRef(msgspec.Struct, forbid_unknown_fields=True):
    """A tunable value of the definition, e.g. `{"param": "weekly_marketing_max"}`."""

    param: str


class CapRuleDefinition(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """At most `max` sends per customer per window.

    `window`: a calendar `day`, `week` (ISO, Monday first) or `month` in the customer's
    time zone (else the tenant's), or `rolling` over the last `days` days. `channel`: one
    channel (`email`, `sms`...) or `any`. `categories` / `tags`, when given, restrict both
    what the rule counts and which messages it limits. Transactional messages are never
    counted nor limited.
    """

    id: str
    max: int | ParamRef
    window: WindowKind
    days: int | ParamRef | None = None
    channel: str = ANY_CHANNEL
    categories: list[Category] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)
    enabled: bool | ParamRef = True
    description: str = ""


class PressurePolicyDefinition(msgspec.Struct, forbid_unknown_fields=True,
                               omit_defaults=True):
    """The global (HQ) pressure policy. Quiet hours are minutes after local midnight
    (1260 = 21:00); start == end means no tenant quiet hours."""

    rules: list[CapRuleDefinition] = msgspec.field(default_factory=list)
    quiet_start: int | ParamRef = 0
    quiet_end: int | ParamRef = 0
    quiet_hours_action: QuietAction | ParamRef = "delay"
    alert_bypass_quiet_hours: bool | ParamRef = False
    campaign_exemption_allowed: bool | ParamRef = False


class CapRule(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    max: int
    window: WindowKind
    days: int | None = None
    channel: str = ANY_CHANNEL
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""

    def applies_to(self, channel: str, category: str, tags: tuple[str, ...] | list[str]) -> bool:
        """Whether a message of this channel/category/tags is counted by (and limited by)
        this rule. The same predicate is written in SQL in `core.pressure.sql`."""
        if category == "transactional":
            return False
        if self.channel != ANY_CHANNEL and channel != self.channel:
            return False
        if self.categories and category not in self.categories:
            return False
        return not self.tags or bool(set(self.tags) & set(tags))


class PressurePolicy(msgspec.Struct, frozen=True):
    """The effective policy of one tenant (enabled rules only, parameters resolved)."""

    version: int
    rules: tuple[CapRule, ...]
    quiet_start: int
    quiet_end: int
    quiet_hours_action: QuietAction
    alert_bypass_quiet_hours: bool
    campaign_exemption_allowed: bool

    @property
    def has_quiet_hours(self) -> bool:
        return self.quiet_start != self.quiet_end


class RuleUsage(msgspec.Struct):
    """How much of one rule a customer has used in the window around `at`."""

    rule: str
    max: int
    window_start: str
    window_end: str
    counted: int
    remaining: int


class CustomerPressure(msgspec.Struct):
    customer_id: str
    at: str
    timezone: str
    rules: list[RuleUsage]


class CapViolation(msgspec.Struct):
    customer_id: str
    rule: str
    window_start: str
    count: int
    max: int


class PressureAudit(msgspec.Struct):
    """Result of the cap audit: every window over any rule (should be empty)."""

    rules_checked: int
    violations: list[CapViolation]
