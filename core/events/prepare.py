"""Per-item checks of an ingestion batch, before any SQL: decoding, identifiers, the
tracking plan, traits, timestamps. Each item becomes a resolution `Record` or a result
(rejected / quarantined) that names the field at fault."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from core.events.schemas import EventIn, Identifiers, IdentifyIn, ItemResult
from core.identity.normalise import InvalidIdentifier, is_blocked, normalise_identifier
from core.identity.resolve import Key, Record, sort_ids
from core.model.service import DataConfig
from core.model.validation import (
    BUILTIN_IDENTIFIER_FIELDS,
    Problem,
    check_properties,
    check_trait,
)

RESERVED_TYPES = frozenset({"identify"})
OLDEST = datetime(1900, 1, 1, tzinfo=UTC)
_SIMPLE_KINDS = ("email", "phone", "ticketing_id", "app_user_id", "loyalty_id")


class Rejected(Exception):
    def __init__(self, reason: str, field: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def decode_items(raws: list[msgspec.Raw], type_: type) -> list[Any]:
    """Each raw item as `type_`, or a rejected `ItemResult` naming the bad field."""
    decoder = msgspec.json.Decoder(type_)
    out: list[Any] = []
    for i, raw in enumerate(raws):
        try:
            out.append(decoder.decode(raw))
        except msgspec.ValidationError as err:
            message, _, location = str(err).partition(" - at `")
            field = location.rstrip("`").removeprefix("$").lstrip(".") or None
            out.append(ItemResult(index=i, status="rejected", reason=message,
                                  field=f"items[{i}]" + (f".{field}" if field else "")))
    return out


@functools.lru_cache(maxsize=200_000)
def _normalised(kind: str, value: str, region: str,
                extra: tuple[str, ...]) -> str | Rejected | None:
    """Normalised value, None when blocked, or the rejection (cached: the same customers
    come back batch after batch)."""
    try:
        normalised = normalise_identifier(kind, value, region)
    except InvalidIdentifier as err:
        return Rejected(err.reason, f"identifiers.{kind}")
    return None if is_blocked(kind, normalised, extra) else normalised


def identifier_keys(ids: Identifiers | None, config: DataConfig, region: str) -> list[Key]:
    """Usable (kind, normalised value) pairs, highest priority first; blocked values are
    dropped silently (they never merge), invalid ones reject the item."""
    if ids is None:
        return []
    pairs: list[tuple[str, str, str]] = []
    for kind in _SIMPLE_KINDS:
        value = getattr(ids, kind)
        if value is not None:
            pairs.append((kind, value, f"identifiers.{kind}"))
    for source, value in (ids.external or {}).items():
        pairs.append(("external", f"{source}:{value}", f"identifiers.external.{source}"))
    keys: list[Key] = []
    for kind, value, field in pairs:
        extra = tuple(config.rules.blocked.get(kind, ()))
        result = _normalised(kind, value, region, extra)
        if isinstance(result, Rejected):
            raise Rejected(result.reason, field)
        if result is not None and (kind, result) not in keys:
            keys.append((kind, result))
    return sort_ids(config.rules, keys)


def check_time(value: datetime | None, now: datetime, config: DataConfig, field: str) -> datetime:
    if value is None:
        return now
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # documented: a time without offset is UTC
    tolerance = config.settings.future_tolerance_seconds
    if value > now + timedelta(seconds=tolerance):
        raise Rejected(f"is in the future beyond the tolerance of {tolerance}s", field)
    if value < OLDEST:
        raise Rejected("is before 1900", field)
    return value


def prepare_event(i: int, item: EventIn, config: DataConfig, region: str,
                  now: datetime) -> tuple[Record, str] | ItemResult | tuple[None, list[Problem]]:
    """A record and its JSON properties; a rejected result; or (None, problems) when the
    event is only fit for quarantine."""
    try:
        keys = identifier_keys(item.identifiers, config, region)
        if not keys and item.customer_id is None:
            raise Rejected("no usable identifier: give at least one valid, non-placeholder "
                           "identifier or a customer_id", "identifiers")
        occurred_at = check_time(item.occurred_at, now, config, "occurred_at")
        if item.type in RESERVED_TYPES:
            raise Rejected(f"{item.type!r} is reserved", "type")
    except Rejected as err:
        return ItemResult(index=i, status="rejected", reason=err.reason,
                          field=f"items[{i}].{err.field}" if err.field else f"items[{i}]")
    specs = config.event_types.get(item.type)
    problems = ([Problem("type", f"{item.type!r} is not in the tracking plan")]
                if specs is None else check_properties(specs, item.properties))
    if problems:
        policy = (config.settings.unknown_events if specs is None
                  else config.settings.invalid_properties)
        if policy == "reject":
            first = problems[0]
            field = "type" if specs is None else f"properties.{first.field}"
            return ItemResult(index=i, status="rejected", field=f"items[{i}].{field}",
                              reason="; ".join(f"{p.field} {p.reason}" if specs else p.reason
                                               for p in problems))
        return None, problems
    record = Record(index=i, ids=keys, seen_at=occurred_at, customer_id=item.customer_id)
    return record, msgspec.json.encode(item.properties).decode()


def prepare_identify(i: int, item: IdentifyIn, config: DataConfig, region: str,
                     now: datetime) -> Record | ItemResult:
    try:
        ids = item.identifiers
        promoted = {k: v for k, v in item.traits.items()
                    if k in BUILTIN_IDENTIFIER_FIELDS and isinstance(v, str)}
        if promoted:  # email / phone traits are identifiers too
            ids = msgspec.structs.replace(ids, **{k: getattr(ids, k) or v
                                                  for k, v in promoted.items()})
        keys = identifier_keys(ids, config, region)
        if not keys:
            raise Rejected("no usable identifier: give at least one valid, non-placeholder "
                           "identifier", "identifiers")
        traits: dict[str, Any] = {}
        for name, value in item.traits.items():
            if name in BUILTIN_IDENTIFIER_FIELDS:
                continue
            field = config.fields.get(name)
            if field is None:
                if config.settings.strict_traits:
                    raise Rejected("is not a field of the data dictionary", f"traits.{name}")
                traits[name] = value
                continue
            try:
                traits[name] = check_trait(field, value)
            except Problem as err:
                raise Rejected(err.reason, f"traits.{name}") from None
        seen_at = check_time(item.timestamp, now, config, "timestamp")
    except Rejected as err:
        return ItemResult(index=i, status="rejected", reason=err.reason,
                          field=f"items[{i}].{err.field}" if err.field else f"items[{i}]")
    return Record(index=i, ids=keys, seen_at=seen_at, traits=traits)
