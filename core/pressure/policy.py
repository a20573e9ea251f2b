"""The `pressure_policy` overlay kind: validation, built-in default, resolution.

Validation goes further than "the parameter exists": every value a tenant could reach
through a parameter (locked → the default, bounded → its bounds) must be legal where the
definition uses it, so composing HQ ⊕ overlay can never produce an invalid policy (a cap
of -1, a quiet hour of 25:00). An `overridable` (unbounded) integer is therefore refused
for caps, days and quiet hours.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from core.db import Database
from core.errors import InvalidInput
from core.pressure.schemas import (
    ANY_CHANNEL,
    MAX_RULES,
    MINUTES_PER_DAY,
    CapRule,
    CapRuleDefinition,
    ParamRef,
    PressurePolicy,
    PressurePolicyDefinition,
)
from tenants.governance import Parameter, value_type
from tenants.overlay import Effective, OverlayKind, VersionCreate, register_kind

KIND = "pressure_policy"
_RULE_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_CAP = 1000
MAX_ROLLING_DAYS = 366


def _reachable_numbers(param: Parameter) -> tuple[float, float] | None:
    """The numeric range a tenant can reach; None when unbounded."""
    if param.mode == "locked":
        return float(param.default), float(param.default)
    if param.mode == "bounded":
        if param.allowed is not None:
            values = [float(v) for v in param.allowed]
            low, high = min(values), max(values)
            if param.min is not None:
                low = max(low, param.min)
            if param.max is not None:
                high = min(high, param.max)
            return low, high
        if param.min is not None and param.max is not None:
            return param.min, param.max
    return None


def _check_int(value: Any, params: dict[str, Parameter], field: str, low: int,
               high: int) -> None:
    if isinstance(value, ParamRef):
        param = _param(value, params, field)
        if value_type(param.default) != "integer":
            raise InvalidInput(f"parameter {value.param!r} must have an integer default",
                               field=field)
        reach = _reachable_numbers(param)
        if reach is None or reach[0] < low or reach[1] > high:
            raise InvalidInput(
                f"parameter {value.param!r} must be locked or bounded within {low}..{high}",
                field=field)
    elif value is not None and not low <= value <= high:
        raise InvalidInput(f"must be between {low} and {high}", field=field)


def _check_typed(value: Any, params: dict[str, Parameter], field: str, type_: str,
                 allowed: tuple[str, ...] | None = None) -> None:
    if not isinstance(value, ParamRef):
        return
    param = _param(value, params, field)
    if value_type(param.default) != type_:
        raise InvalidInput(f"parameter {value.param!r} must have a {type_} default",
                           field=field)
    if allowed is not None:
        reachable = [param.default] if param.mode == "locked" else param.allowed
        if reachable is None or any(v not in allowed for v in reachable):
            raise InvalidInput(f"parameter {value.param!r} must be locked or bounded to "
                               f"{list(allowed)}", field=field)


def _param(ref: ParamRef, params: dict[str, Parameter], field: str) -> Parameter:
    if ref.param not in params:
        raise InvalidInput(f"unknown parameter {ref.param!r} (declared: "
                           f"{', '.join(sorted(params)) or 'none'})", field=field)
    return params[ref.param]


async def validate(db: Database, definition: PressurePolicyDefinition,
                   params: dict[str, Parameter]) -> None:
    """The overlay kind's validator (HQ publishing, tenant overrides)."""
    check_definition(definition, params)


def check_definition(definition: PressurePolicyDefinition,
                     params: dict[str, Parameter]) -> None:
    if len(definition.rules) > MAX_RULES:
        raise InvalidInput(f"at most {MAX_RULES} cap rules", field="definition.rules")
    seen: set[str] = set()
    for i, rule in enumerate(definition.rules):
        validate_rule(rule, params, f"definition.rules[{i}]")
        if rule.id in seen:
            raise InvalidInput(f"duplicate rule id {rule.id!r}", field=f"definition.rules[{i}].id")
        seen.add(rule.id)
    for name in ("quiet_start", "quiet_end"):
        _check_int(getattr(definition, name), params, f"definition.{name}", 0,
                   MINUTES_PER_DAY - 1)
    _check_typed(definition.quiet_hours_action, params, "definition.quiet_hours_action",
                 "string", ("delay", "abort"))
    for name in ("alert_bypass_quiet_hours", "campaign_exemption_allowed"):
        _check_typed(getattr(definition, name), params, f"definition.{name}", "boolean")


def validate_rule(rule: CapRuleDefinition, params: dict[str, Parameter], field: str) -> None:
    if not _RULE_ID.match(rule.id):
        raise InvalidInput("rule id must be lower-case letters, digits and _ (max 40)",
                           field=f"{field}.id")
    if rule.channel != ANY_CHANNEL and not _CHANNEL.match(rule.channel):
        raise InvalidInput("channel must be a channel name or 'any'", field=f"{field}.channel")
    _check_int(rule.max, params, f"{field}.max", 0, MAX_CAP)
    if rule.window == "rolling":
        if rule.days is None:
            raise InvalidInput("a rolling window needs `days`", field=f"{field}.days")
        _check_int(rule.days, params, f"{field}.days", 1, MAX_ROLLING_DAYS)
    elif rule.days is not None:
        raise InvalidInput("`days` only applies to rolling windows", field=f"{field}.days")
    for j, tag in enumerate(rule.tags):
        if not tag or len(tag) > 64:
            raise InvalidInput("tags are 1 to 64 characters", field=f"{field}.tags[{j}]")
    if len(set(rule.categories)) != len(rule.categories):
        raise InvalidInput("duplicate category", field=f"{field}.categories")
    if "transactional" in rule.categories:
        raise InvalidInput("transactional messages are exempt from pressure rules",
                           field=f"{field}.categories")
    _check_typed(rule.enabled, params, f"{field}.enabled", "boolean")


def _value(value: Any, values: dict[str, Any]) -> Any:
    return values[value.param] if isinstance(value, ParamRef) else value


def resolve(effective: Effective) -> PressurePolicy:
    """Plain values from the composed definition ⊕ parameters."""
    definition = msgspec.convert(effective.definition, PressurePolicyDefinition)
    values = effective.parameters
    rules = []
    for rule in definition.rules:
        if not _value(rule.enabled, values):
            continue
        days = _value(rule.days, values)
        rules.append(CapRule(
            id=rule.id, max=int(_value(rule.max, values)), window=rule.window,
            days=int(days) if days is not None else None, channel=rule.channel,
            categories=tuple(rule.categories), tags=tuple(rule.tags),
            description=rule.description))
    return PressurePolicy(
        version=effective.version, rules=tuple(rules),
        quiet_start=int(_value(definition.quiet_start, values)),
        quiet_end=int(_value(definition.quiet_end, values)),
        quiet_hours_action=_value(definition.quiet_hours_action, values),
        alert_bypass_quiet_hours=bool(_value(definition.alert_bypass_quiet_hours, values)),
        campaign_exemption_allowed=bool(_value(definition.campaign_exemption_allowed, values)),
    )


def builtin() -> VersionCreate:
    """What tenants run before HQ publishes a pressure policy: the seeds' "better not to
    contact than to annoy" defaults."""
    ref = ParamRef
    return VersionCreate(
        definition=PressurePolicyDefinition(
            rules=[
                CapRuleDefinition(id="weekly_marketing", max=ref("weekly_marketing_max"),
                                  window="week", categories=["marketing"],
                                  description="marketing, all channels, per calendar week"),
                CapRuleDefinition(id="daily_any", max=ref("daily_max"), window="day",
                                  categories=["marketing", "service"],
                                  description="marketing and service, per calendar day"),
                CapRuleDefinition(id="sms_monthly", max=ref("sms_monthly_max"),
                                  window="month", channel="sms", categories=["marketing"],
                                  description="marketing SMS per calendar month"),
            ],
            quiet_start=ref("quiet_start"), quiet_end=ref("quiet_end"),
            quiet_hours_action=ref("quiet_hours_action"),
            alert_bypass_quiet_hours=ref("alert_bypass_quiet_hours"),
            campaign_exemption_allowed=ref("campaign_exemption_allowed"),
        ),
        parameters={
            "weekly_marketing_max": Parameter(default=3, mode="bounded", min=0, max=4,
                                              description="marketing sends per week"),
            "daily_max": Parameter(default=1, mode="bounded", min=0, max=2,
                                   description="marketing + service sends per day"),
            "sms_monthly_max": Parameter(default=4, mode="bounded", min=0, max=8,
                                         description="marketing SMS per month"),
            "quiet_start": Parameter(default=1260, mode="bounded", min=0, max=1439,
                                     description="quiet hours start, minutes after midnight"),
            "quiet_end": Parameter(default=480, mode="bounded", min=0, max=1439,
                                   description="quiet hours end, minutes after midnight"),
            "quiet_hours_action": Parameter(default="delay", mode="bounded",
                                            allowed=["delay", "abort"],
                                            description="tenant default: delay or abort"),
            "alert_bypass_quiet_hours": Parameter(
                default=True, description="alert campaigns may bypass quiet hours"),
            "campaign_exemption_allowed": Parameter(
                default=False, description="a campaign may be exempted from caps"),
        },
        notes="built-in pressure policy",
    )


PRESSURE_POLICY = register_kind(OverlayKind(
    name=KIND, definition_type=PressurePolicyDefinition, validate=validate, builtin=builtin,
    description="Marketing pressure: frequency caps, quiet hours, exemptions"))
