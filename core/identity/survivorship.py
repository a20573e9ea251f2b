"""Survivorship: which value a profile field keeps when two values compete.

Every field (builtin column or extension attribute) carries metadata in
`customers.field_meta[name] = [set_at, source, first_seen]` (ISO timestamps), so the same
rules decide an update (incoming record vs stored profile) and a merge (profile vs profile).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from core.identity.rules import FieldRule, IdentityRules

PROFILE_COLUMNS = ("first_name", "last_name", "email", "phone", "language", "country",
                   "birth_date", "postal_code")
Meta = list[str]  # [set_at, source, first_seen]


def _rule(rules: IdentityRules, name: str) -> FieldRule:
    return rules.survivorship.get(name) or FieldRule(rule=rules.default_survivorship)


def _rank(rule: FieldRule, source: str) -> int:
    try:
        return rule.sources.index(source)
    except ValueError:
        return len(rule.sources)


def incoming_wins(rule: FieldRule, current: Meta | None, incoming: Meta) -> bool:
    """Both values are non-empty; does the incoming one replace the current one?"""
    if current is None:
        return True
    if rule.rule == "first_seen":
        return incoming[2] < current[2]
    if rule.rule == "source_priority":
        a, b = _rank(rule, incoming[1]), _rank(rule, current[1])
        if a != b:
            return a < b
    return incoming[0] >= current[0]


def apply_traits(
    values: dict[str, Any], meta: dict[str, Meta], traits: dict[str, Any], at: datetime,
    source: str, rules: IdentityRules,
) -> set[str]:
    """Apply `traits` (already validated) to `values`/`meta` in place; returns the names
    that changed. `None` clears a field only if the rule would let the record win."""
    stamp = at.isoformat()
    changed: set[str] = set()
    for name, value in traits.items():
        current_value = values.get(name)
        current_meta = meta.get(name)
        incoming: Meta = [stamp, source, current_meta[2] if current_meta else stamp]
        if current_value is not None and not incoming_wins(_rule(rules, name), current_meta,
                                                           incoming):
            continue
        if current_value is None and value is None:
            continue
        if current_meta is not None and current_value is None:
            incoming[2] = stamp  # a cleared value starts a new "first seen"
        if value != current_value:
            changed.add(name)
        values[name] = value
        meta[name] = incoming
    return changed


def merge_fields(
    survivor: dict[str, Any], survivor_meta: dict[str, Meta], merged: dict[str, Any],
    merged_meta: dict[str, Meta], rules: IdentityRules,
) -> dict[str, str]:
    """Fold the merged profile into the survivor in place; returns field -> which side won
    (kept in the merge history)."""
    decisions: dict[str, str] = {}
    for name in set(survivor) | set(merged):
        theirs = merged.get(name)
        if theirs is None:
            continue
        ours = survivor.get(name)
        ours_meta = survivor_meta.get(name)
        theirs_meta = merged_meta.get(name) or ["", "", ""]
        if ours is None or incoming_wins(_rule(rules, name), ours_meta, theirs_meta):
            if ours != theirs:
                decisions[name] = "merged"
            survivor[name] = theirs
            survivor_meta[name] = theirs_meta
            if ours_meta and ours is not None and ours_meta[2] < theirs_meta[2]:
                survivor_meta[name] = [theirs_meta[0], theirs_meta[1], ours_meta[2]]
        elif ours != theirs:
            decisions[name] = "survivor"
    return decisions


def split_profile(row: dict[str, Any]) -> dict[str, Any]:
    """Columns and attributes as one flat field -> value mapping."""
    values = {name: row.get(name) for name in PROFILE_COLUMNS}
    values.update(row.get("attributes") or {})
    return values


def join_profile(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    columns = {name: values.get(name) for name in PROFILE_COLUMNS}
    attributes = {k: v for k, v in values.items() if k not in PROFILE_COLUMNS and v is not None}
    if isinstance(columns["birth_date"], str):
        columns["birth_date"] = date.fromisoformat(columns["birth_date"])
    return columns, attributes
