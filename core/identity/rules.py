"""Identity rules: HQ default rule set ⊕ tenant overlay, within HQ governance.

Kept as one typed document per level (HQ in `hq_data_policies['identity_rules']`, the
tenant's overlay in `tenant_data_settings.identity_overlay`) until the shared overlay
mechanism of `tenants/` can carry it; `effective_rules` is the only place they combine.

- `kinds`: per identifier kind, a priority (higher decides first and survives conflicts) and
  an optional limit of active identifiers of that kind per profile. A record that would
  break a limit demotes its lower-priority identifier instead of merging profiles.
- `blocked`: extra values per kind that never identify anyone (on top of the built-in
  placeholder list). A tenant can only add to HQ's list.
- `survivorship`: which value a field keeps when two values compete (an update, a merge):
  `most_recent` (by the record's timestamp), `first_seen` (the first non-empty value is
  kept), or `source_priority` (earlier sources in `sources` win; ties go to the most recent).
- `locked`: HQ-only list of settings tenants may not override, written `kinds.<kind>` or
  `survivorship.<field>`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from core.errors import Forbidden, InvalidInput
from core.identity.normalise import IDENTIFIER_KINDS

SurvivorshipRule = Literal["most_recent", "first_seen", "source_priority"]


class KindRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    priority: int = 0
    limit: int | None = None


class FieldRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    rule: SurvivorshipRule = "most_recent"
    sources: list[str] = msgspec.field(default_factory=list)


class IdentityRules(msgspec.Struct, forbid_unknown_fields=True):
    kinds: dict[str, KindRule]
    blocked: dict[str, list[str]] = msgspec.field(default_factory=dict)
    survivorship: dict[str, FieldRule] = msgspec.field(default_factory=dict)
    default_survivorship: SurvivorshipRule = "most_recent"
    locked: list[str] = msgspec.field(default_factory=list)


class IdentityOverlay(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a tenant may set: overrides of kinds and survivorship, additional blocked values."""

    kinds: dict[str, KindRule] = msgspec.field(default_factory=dict)
    blocked: dict[str, list[str]] = msgspec.field(default_factory=dict)
    survivorship: dict[str, FieldRule] = msgspec.field(default_factory=dict)


HQ_DEFAULT_RULES = IdentityRules(
    kinds={
        # Accounts issued by our own systems identify one person each: one per profile.
        "ticketing_id": KindRule(priority=100, limit=1),
        "loyalty_id": KindRule(priority=90, limit=1),
        "app_user_id": KindRule(priority=80, limit=1),
        "external": KindRule(priority=70),
        "email": KindRule(priority=50),
        "phone": KindRule(priority=40),
    },
    survivorship={"birth_date": FieldRule(rule="first_seen")},
    locked=["kinds.ticketing_id"],
)


def check_rules(rules: IdentityRules | IdentityOverlay, prefix: str = "") -> None:
    for kind, rule in rules.kinds.items():
        if kind not in IDENTIFIER_KINDS:
            raise InvalidInput(f"unknown identifier kind {kind!r}", field=f"{prefix}kinds.{kind}")
        if rule.limit is not None and rule.limit < 1:
            raise InvalidInput("limit must be at least 1 (omit it for no limit)",
                               field=f"{prefix}kinds.{kind}.limit")
    for kind in rules.blocked:
        if kind not in IDENTIFIER_KINDS:
            raise InvalidInput(f"unknown identifier kind {kind!r}",
                               field=f"{prefix}blocked.{kind}")
    for name, rule in rules.survivorship.items():
        if rule.rule == "source_priority" and not rule.sources:
            raise InvalidInput("source_priority needs a list of sources",
                               field=f"{prefix}survivorship.{name}.sources")


def check_overlay_governance(hq: IdentityRules, overlay: IdentityOverlay) -> None:
    check_rules(overlay)
    locked = set(hq.locked)
    for kind in overlay.kinds:
        if f"kinds.{kind}" in locked:
            raise Forbidden(f"HQ locked the rule for {kind!r}", field=f"kinds.{kind}")
    for name in overlay.survivorship:
        if f"survivorship.{name}" in locked:
            raise Forbidden(f"HQ locked survivorship of {name!r}", field=f"survivorship.{name}")


def effective_rules(hq: IdentityRules, overlay: IdentityOverlay) -> IdentityRules:
    """HQ ⊕ overlay. Locked entries keep HQ's value even if an old overlay mentions them
    (HQ may lock after a tenant overrode)."""
    locked = set(hq.locked)
    kinds = dict(hq.kinds)
    for kind, rule in overlay.kinds.items():
        if f"kinds.{kind}" not in locked:
            kinds[kind] = rule
    survivorship = dict(hq.survivorship)
    for name, rule in overlay.survivorship.items():
        if f"survivorship.{name}" not in locked:
            survivorship[name] = rule
    blocked = {k: list(v) for k, v in hq.blocked.items()}
    for kind, values in overlay.blocked.items():
        blocked[kind] = sorted({*blocked.get(kind, ()), *values})
    return IdentityRules(kinds=kinds, blocked=blocked, survivorship=survivorship,
                         default_survivorship=hq.default_survivorship, locked=list(hq.locked))


def priority_of(rules: IdentityRules, kind: str) -> int:
    rule = rules.kinds.get(kind)
    return rule.priority if rule else 0


def limit_of(rules: IdentityRules, kind: str) -> int | None:
    rule = rules.kinds.get(kind)
    return rule.limit if rule else None
