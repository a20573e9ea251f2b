"""Per-item checks of an ingestion batch, before any SQL: decoding, identifiers, the
tracking plan, traits, timestamps. Each item becomes a resolution `Record` or a result
(rejected / quarantined) that names the field at fault."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from core.events.schemas import (
    MAX_BATCH_ITEMS,
    EventIn,
    Identifiers,
    IdentifyIn,
    ItemResult,
    RawBatch,
)
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


class _Events(msgspec.Struct):
    items: list[EventIn]


class _Identifies(msgspec.Struct):
    items: list[IdentifyIn]


_TYPED: dict[type, type] = {EventIn: _Events, IdentifyIn: _Identifies}


def decode_batch(body: bytes, type_: type) -> list[Any]:
    """A batch body as items of `type_`, a rejected `ItemResult` standing for each item
    that does not decode. One typed decode when the whole batch is well-formed (the
    common case, and much cheaper); item by item otherwise.
    Raises msgspec errors for a body that is not a batch at all."""
    try:
        return msgspec.json.decode(body, type=_TYPED[type_]).items
    except msgspec.ValidationError:
        raws = msgspec.json.decode(body, type=RawBatch).items
    if len(raws) > MAX_BATCH_ITEMS:  # let the caller report the size, not item errors
        return raws
    return decode_items(raws, type_)


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


def error_location(err: msgspec.ValidationError) -> tuple[str, str | None]:
    """msgspec's message and the dotted path it names (`$.a[0].b` -> `a[0].b`); for an
    unknown field, the path of that field."""
    message, _, location = str(err).partition(" - at `")
    field = location.rstrip("`").removeprefix("$").lstrip(".") or None
    if unknown := _UNKNOWN_FIELD.search(message):
        field = f"{field}.{unknown.group(1)}" if field else unknown.group(1)
    return message, field


def decode_items(raws: list[msgspec.Raw], type_: type) -> list[Any]:
    """Each raw item as `type_`, or a rejected `ItemResult` naming the bad field."""
    decoder = msgspec.json.Decoder(type_)
    out: list[Any] = []
    for i, raw in enumerate(raws):
        try:
            out.append(decoder.decode(raw))
        except msgspec.ValidationError as err:
            message, field = error_location(err)
            out.append(ItemResult(index=i, status="rejected", reason=message,
                                  field=f"items[{i}]" + (f".{field}" if field else "")))
    return out


class _Cached(msgspec.Struct, gc=False, frozen=True):
    """A cache entry the cyclic garbage collector does not track."""

    value: Any


# The caches below are dicts of strings and untracked structs, which the cyclic garbage
# collector never walks. (An `lru_cache` of this size holds 200,000 linked lists, all
# walked by every full collection: once full, that was a fifth of ingestion's CPU.)
# A cache that fills up starts again empty.
_CACHE_SIZE = 200_000
_NORMALISED: dict[tuple[str, str, tuple[str, ...]], dict[str, str | _Cached | None]] = {}
_MISSING: Any = _Cached(None)


def _normalised(kind: str, value: str, region: str,
                extra: tuple[str, ...]) -> str | _Cached | None:
    """Normalised value, None when blocked, or the rejection reason as `_Cached`
    (cached: the same customers come back batch after batch)."""
    cache = _NORMALISED.get((kind, region, extra))
    if cache is None:
        if len(_NORMALISED) > 1024:  # tenants' block lists come and go
            _NORMALISED.clear()
        cache = _NORMALISED[(kind, region, extra)] = {}
    found = cache.get(value, _MISSING)
    if found is _MISSING:
        try:
            normalised = normalise_identifier(kind, value, region)
            found = None if is_blocked(kind, normalised, extra) else normalised
        except InvalidIdentifier as err:
            found = _Cached(err.reason)
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[value] = found
    return found


_KEYS: dict[tuple, dict[Identifiers, _Cached]] = {}


def _keys_cache(config: DataConfig, region: str) -> dict[Identifiers, _Cached]:
    caches = config.caches
    cache = caches.get(region)
    if cache is None:
        if len(_KEYS) > 1024:
            _KEYS.clear()
        cache = caches[region] = _KEYS.setdefault((region, config.identity_key), {})
    return cache


def cached_identifier_keys(ids: Identifiers | None, config: DataConfig,
                           region: str) -> Sequence[Key]:
    """`identifier_keys`, memoised per identifiers value: the same customers come back
    batch after batch."""
    cache = _keys_cache(config, region)
    try:
        found = cache.get(ids)  # type: ignore[arg-type]
    except TypeError:  # `external` is a dict: not hashable, not cached
        return identifier_keys(ids, config, region)
    if found is None:
        try:
            found = _Cached(tuple(identifier_keys(ids, config, region)))
        except Rejected as err:
            found = _Cached(err)
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[ids] = found  # type: ignore[index]
    value = found.value
    if value.__class__ is Rejected:
        raise value
    return value  # type: ignore[no-any-return]


def identifier_keys(ids: Identifiers | None, config: DataConfig, region: str) -> list[Key]:
    """Usable (kind, normalised value) pairs, highest priority first; blocked values are
    dropped silently (they never merge), invalid ones reject the item."""
    if ids is None:
        return []
    keys: list[Key] = []
    blocked = config.blocked_tuples
    for kind in _SIMPLE_KINDS:
        value = getattr(ids, kind)
        if value is None:
            continue
        result = _normalised(kind, value, region, blocked.get(kind, ()))
        if result.__class__ is _Cached:
            raise Rejected(result.value, f"identifiers.{kind}")  # type: ignore[union-attr]
        if result is not None:
            keys.append((kind, result))  # type: ignore[arg-type]
    if ids.external:
        for source, value in ids.external.items():
            result = _normalised("external", f"{source}:{value}", region,
                                 blocked.get("external", ()))
            if isinstance(result, _Cached):
                raise Rejected(result.value, f"identifiers.external.{source}")
            if result is not None and ("external", result) not in keys:
                keys.append(("external", result))
    return keys if len(keys) < 2 else sort_ids(config.rules, keys)


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
                  now: datetime) -> Record | ItemResult | list[Problem]:
    """A record (carrying its event); a rejected result; or the problems that send the
    event to quarantine."""
    # The hot path first: a known type with valid properties, usable identifiers or a
    # customer_id, a time with an offset inside the tolerance.
    check = config.property_checks.get(item.type)
    occurred_at = item.occurred_at
    if (check is not None and check(item.properties)
            and occurred_at is not None and occurred_at.tzinfo is not None
            and OLDEST <= occurred_at <= now + config.tolerance):
        try:
            keys = cached_identifier_keys(item.identifiers, config, region)
        except Rejected:
            keys = None
        if keys is not None and (keys or item.customer_id is not None):
            return Record(index=i, ids=keys, seen_at=occurred_at, customer_id=item.customer_id,
                          message_id=item.message_id, event_type=item.type,
                          properties=item.properties)
    try:
        keys = cached_identifier_keys(item.identifiers, config, region)
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
        return problems
    return Record(index=i, ids=keys, seen_at=occurred_at, customer_id=item.customer_id,
                  timed=item.occurred_at is not None,
                  message_id=item.message_id, event_type=item.type,
                  properties=item.properties)


def prepare_identify(i: int, item: IdentifyIn, config: DataConfig, region: str,
                     now: datetime) -> Record | ItemResult:
    try:
        ids = item.identifiers
        promoted = {k: v for k, v in item.traits.items()
                    if k in BUILTIN_IDENTIFIER_FIELDS and isinstance(v, str)}
        if promoted:  # email / phone traits are identifiers too
            ids = msgspec.structs.replace(ids, **{k: getattr(ids, k) or v
                                                  for k, v in promoted.items()})
        keys = cached_identifier_keys(ids, config, region)
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
        if b"\\u0000" in msgspec.json.encode(traits):  # text and jsonb cannot hold NUL
            raise Rejected("contains a NUL character", "traits")
        seen_at = check_time(item.timestamp, now, config, "timestamp")
    except Rejected as err:
        return ItemResult(index=i, status="rejected", reason=err.reason,
                          field=f"items[{i}].{err.field}" if err.field else f"items[{i}]")
    record = Record(index=i, ids=keys, seen_at=seen_at, traits=traits)
    if item.message_id:
        record.message_id, record.event_type = item.message_id, "identify"
        record.properties = {"fields": sorted(item.traits)}
    return record
