"""Declarative field mapping: source records → core model (identifiers, profile traits,
consents, events).

A mapping names source columns (dotted paths reach into nested JSON: `customer.email`).
Values are coerced to the types of the data dictionary and the tracking plan, since CSV
gives only text: numbers, booleans (`1/0`, `true/false`, `yes/no`, `oui/non`), dates
(ISO 8601 or a `format`). Empty values are absent values: an import never clears a field.

`Mapper.map(record)` returns a `Mapped` row or raises `RowError` naming the field; the run
records the error against the line and carries on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingABC
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from core.consents.schemas import Channel, LegalBasis, Purpose
from core.errors import InvalidInput
from core.identity.normalise import IDENTIFIER_KINDS

ValueType = Literal["string", "number", "integer", "boolean", "date", "datetime", "auto"]
TRUE = frozenset({"1", "true", "t", "yes", "y", "oui", "o", "on", "opt-in", "optin",
                  "granted", "x"})
FALSE = frozenset({"0", "false", "f", "no", "n", "non", "off", "opt-out", "optout",
                   "denied", "withdrawn"})


class Column(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A source column with how to read it. A plain string is shorthand for
    `{"column": "..."}`."""

    column: Annotated[str, msgspec.Meta(min_length=1)]
    type: ValueType = "auto"  # auto: the data dictionary / tracking plan type
    format: str | None = None  # strptime format for dates, e.g. %d/%m/%Y %H:%M
    default: str | float | bool | None = None


Source = str | Column


class ConsentMapping(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A yes/no column → the consent of one channel x purpose (granted / denied)."""

    column: str
    channel: Channel
    purpose: Purpose
    legal_basis: LegalBasis = "consent"
    proof_column: str | None = None


class EventMapping(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Either a constant `type` or a `type_column`; rows with an empty type carry no event.
    `id_column` (the source's own event id) makes re-imports idempotent; without it the id
    is a hash of the mapped event."""

    type: str | None = None
    type_column: str | None = None
    id_column: str | None = None
    occurred_at: Source | None = None
    properties: dict[str, Source] = msgspec.field(default_factory=dict)


class Mapping(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`identifiers`: kind (`email`, `phone`, `ticketing_id`, `app_user_id`, `loyalty_id`,
    or `external.<source>`) → column. `traits`: profile field (core or extension) → column.
    `timezone` applies to date-times written without an offset (default: the tenant's)."""

    identifiers: dict[str, Source]
    traits: dict[str, Source] = msgspec.field(default_factory=dict)
    consents: list[ConsentMapping] = msgspec.field(default_factory=list)
    event: EventMapping | None = None
    timezone: str | None = None


class RowError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# Rows are mapped by the thousand and never form reference cycles: `gc=False` keeps them out
# of the cyclic garbage collector, whose full passes otherwise walk every row in flight.
class MappedEvent(msgspec.Struct, gc=False):
    message_id: str
    type: str
    identifiers: dict[str, Any]
    occurred_at: datetime | None
    properties: dict[str, Any]


class Mapped(msgspec.Struct, gc=False):
    identifiers: dict[str, Any]
    traits: dict[str, Any] = {}
    consents: Sequence[dict[str, Any]] = ()
    event: MappedEvent | None = None


Getter = Callable[[MappingABC[str, Any]], Any]


def _getter(path: str) -> Getter:
    if "." not in path:
        return lambda record: record.get(path)
    parts = path.split(".")

    def get(record: MappingABC[str, Any]) -> Any:
        if path in record:  # a flat column whose name has dots (CSV header)
            return record[path]
        value: Any = record
        for part in parts:
            if not isinstance(value, MappingABC):
                return None
            value = value.get(part)
        return value
    return get


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _coerce(value: Any, kind: str, fmt: str | None, tz: ZoneInfo, what: str) -> Any:
    if kind in ("auto", "string", "enum"):
        return value.strip() if isinstance(value, str) else value
    if kind in ("number", "integer"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        text = str(value).strip().replace("\u00a0", "").replace(" ", "")
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")  # 12,50 written the French way
        try:
            number = float(text)
        except ValueError:
            raise RowError(what, f"{value!r} is not a number") from None
        return int(number) if kind == "integer" or number.is_integer() else number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise RowError(what, f"{value!r} is not a yes/no value")
    if kind == "date":
        return _parse_datetime(value, fmt, tz, what, date_only=True).isoformat()
    if kind == "datetime":
        return _parse_datetime(value, fmt, tz, what).isoformat()
    return value


def _parse_datetime(value: Any, fmt: str | None, tz: ZoneInfo, what: str, *,
                    date_only: bool = False) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
        return moment.date() if date_only else moment
    text = str(value).strip()
    parsed = _parse_text(text, fmt, tz, date_only)
    if parsed is None:
        shape = f"the format {fmt}" if fmt else "ISO 8601"
        raise RowError(what, f"{text!r} is not a date{'' if date_only else '-time'} in "
                             f"{shape}")
    return parsed


# Per (format, zone, date only): text -> parsed value, None when not a date. A plain dict of
# strings and datetimes, which the cyclic garbage collector never walks (an lru_cache's
# linked nodes are lists it walks at every full collection); it starts again when full.
_PARSED: dict[tuple[str | None, ZoneInfo, bool], dict[str, Any]] = {}
_PARSED_SIZE = 65_536


def _parse_text(text: str, fmt: str | None, tz: ZoneInfo, date_only: bool) -> Any:
    """Exports repeat the same timestamps (minute resolution) row after row: strptime is
    the costliest step of mapping a row, so results are cached. None: not a date."""
    cache = _PARSED.get((fmt, tz, date_only))
    if cache is None:
        if len(_PARSED) > 256:
            _PARSED.clear()
        cache = _PARSED[(fmt, tz, date_only)] = {}
    try:
        return cache[text]
    except KeyError:
        pass
    if len(cache) >= _PARSED_SIZE:
        cache.clear()
    parsed = cache[text] = _parse_uncached(text, fmt, tz, date_only)
    return parsed


def _parse_uncached(text: str, fmt: str | None, tz: ZoneInfo, date_only: bool) -> Any:
    try:
        if fmt:
            moment = datetime.strptime(text, fmt)
        elif date_only and len(text) == 10:
            return date.fromisoformat(text)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if date_only:
        return moment.date()
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _column(source: Source) -> Column:
    return Column(column=source) if isinstance(source, str) else source


class Mapper:
    """A mapping compiled against a tenant's data dictionary and tracking plan."""

    def __init__(self, mapping: Mapping, *, field_types: dict[str, str],
                 event_properties: dict[str, dict[str, str]], timezone: str,
                 source: str) -> None:
        self.source = source
        self.tz = ZoneInfo(mapping.timezone or timezone)
        self.ids = [(kind, _column(s), _getter(_column(s).column))
                    for kind, s in mapping.identifiers.items()]
        self.traits = [(name, _column(s), _getter(_column(s).column), field_types[name])
                       for name, s in mapping.traits.items()]
        self.consents = [(c, _getter(c.column), _getter(c.proof_column) if c.proof_column
                          else None) for c in mapping.consents]
        self.event = mapping.event
        self.event_properties = event_properties
        if self.event is not None:
            e = self.event
            self.type_get = _getter(e.type_column) if e.type_column else None
            self.id_get = _getter(e.id_column) if e.id_column else None
            self.at = (_column(e.occurred_at), _getter(_column(e.occurred_at).column)) \
                if e.occurred_at is not None else None
            self.props = [(name, _column(s), _getter(_column(s).column))
                          for name, s in e.properties.items()]

    def _value(self, record: MappingABC[str, Any], column: Column, get: Getter, kind: str,
               what: str) -> Any:
        value = get(record)
        if _empty(value):
            if column.default is None:
                return None
            value = column.default
        return _coerce(value, column.type if column.type != "auto" else kind, column.format,
                       self.tz, what)

    def map(self, record: MappingABC[str, Any]) -> Mapped:
        identifiers: dict[str, Any] = {}
        for kind, _column, get in self.ids:
            value = get(record)
            if _empty(value):
                continue
            value = str(value).strip()
            if kind.startswith("external."):
                identifiers.setdefault("external", {})[kind[9:]] = value
            else:
                identifiers[kind] = value
        if not identifiers:
            raise RowError("identifiers", "no identifier: every mapped identifier column "
                                          "is empty")
        mapped = Mapped(identifiers=identifiers)
        for name, column, get, kind in self.traits:
            value = self._value(record, column, get, kind, f"traits.{name}")
            if value is not None:
                mapped.traits[name] = value
        consents: list[dict[str, Any]] = []
        for consent, get, proof_get in self.consents:
            value = get(record)
            if _empty(value):
                continue
            granted = _coerce(value, "boolean", None, self.tz, f"consents.{consent.column}")
            consents.append({
                "channel": consent.channel, "purpose": consent.purpose,
                "status": "granted" if granted else "denied",
                "legal_basis": consent.legal_basis,
                "proof": str(proof_get(record)) if proof_get and not _empty(
                    proof_get(record)) else None})
        if consents:
            mapped.consents = consents
        if self.event is not None:
            mapped.event = self._event(record, identifiers)
        return mapped

    def _event(self, record: MappingABC[str, Any],
               identifiers: dict[str, Any]) -> MappedEvent | None:
        event = self.event
        assert event is not None
        kind = event.type
        if self.type_get is not None:
            raw = self.type_get(record)
            kind = None if _empty(raw) else str(raw).strip()
        if not kind:
            return None
        specs = self.event_properties.get(kind, {})
        properties = {}
        for name, column, get in self.props:
            value = self._value(record, column, get, specs.get(name, "auto"),
                                f"event.properties.{name}")
            if value is not None:
                properties[name] = value
        occurred_at = None
        if self.at is not None:
            column, get = self.at
            value = get(record)
            if not _empty(value):
                occurred_at = _parse_datetime(value, column.format, self.tz, "event.occurred_at")
        if self.id_get is not None and not _empty(source_id := self.id_get(record)):
            message_id = f"{self.source}:{str(source_id).strip()}"
        else:
            digest = hashlib.sha1(msgspec.json.encode(
                [kind, identifiers, occurred_at, properties], order="sorted")).hexdigest()
            message_id = f"{self.source}:{digest}"
        return MappedEvent(message_id=message_id[:200], type=kind, identifiers=identifiers,
                           occurred_at=occurred_at, properties=properties)


def check_mapping(mapping: Mapping, *, field_types: dict[str, str],
                  event_types: set[str], prefix: str = "config.mapping") -> None:
    """Refuse, at configuration time, a mapping that could never ingest a row."""
    if not mapping.identifiers:
        raise InvalidInput("map at least one identifier", field=f"{prefix}.identifiers")
    for kind in mapping.identifiers:
        base, _, source = kind.partition(".")
        if (base == "external" and not source) or (base != "external" and (
                source or base not in IDENTIFIER_KINDS)):
            raise InvalidInput(f"unknown identifier kind {kind!r} (one of "
                               f"{', '.join(sorted(IDENTIFIER_KINDS - {'external'}))} or "
                               "external.<source>)", field=f"{prefix}.identifiers.{kind}")
    for name in mapping.traits:
        if name not in field_types:
            raise InvalidInput(f"{name!r} is not a field of the data dictionary",
                               field=f"{prefix}.traits.{name}")
    event = mapping.event
    if event is not None:
        if bool(event.type) == bool(event.type_column):
            raise InvalidInput("give either a constant type or a type_column",
                               field=f"{prefix}.event.type")
        if event.type and event.type not in event_types:
            raise InvalidInput(f"{event.type!r} is not an event type of the tracking plan",
                               field=f"{prefix}.event.type")
    if mapping.timezone is not None:
        try:
            ZoneInfo(mapping.timezone)
        except (KeyError, ValueError):
            raise InvalidInput(f"unknown time zone {mapping.timezone!r}",
                               field=f"{prefix}.timezone") from None
