"""Identifier normalisation, blocked values and keyed hashing.

Profiles merge deterministically when two records share a normalised identifier, so this
module decides what "the same identifier" means. Two mistakes are costly in opposite ways:
normalising too little splits one customer in two; normalising too much (or trusting
placeholder values such as "null" or "0000000") merges strangers, which is worse — one
person then receives another's messages. Hence: canonical forms only where the identifier's
own rules say values are equal (email domains, phone numbering plans, typed card numbers),
and a block list for values that must never merge anything.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from typing import Final, Literal

import msgspec
import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from core.errors import InvalidInput

IdentifierKind = Literal["email", "phone", "ticketing_id", "app_user_id", "loyalty_id", "external"]
IDENTIFIER_KINDS: Final[frozenset[str]] = frozenset(
    {"email", "phone", "ticketing_id", "app_user_id", "loyalty_id", "external"}
)

MAX_ID_LENGTH: Final = 128
_MIN_HASH_KEY_BYTES: Final = 16
# Card and account numbers are printed and re-typed by people, in any case, with spaces,
# and sometimes from full-width keyboards: they compare case-insensitively after NFKC.
_HUMAN_TYPED_IDS: Final = frozenset({"ticketing_id", "loyalty_id"})
_EXTERNAL_SOURCE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")


class InvalidIdentifier(InvalidInput):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"invalid {kind}: {reason}")
        self.kind = kind
        self.reason = reason


def normalise_identifier(kind: str, value: str, default_region: str | None = None) -> str:
    """The canonical form of `value`, or `InvalidIdentifier` if it cannot be one.

    - email: trimmed, lowercased, domain IDNA-encoded (`zoé@café.fr` → `zoé@xn--caf-dma.fr`);
      syntax checked by email-validator, without DNS. Gmail-style dots and `+tags` are kept:
      stripping them is provider-specific and would merge distinct mailboxes elsewhere.
    - phone: E.164 (`06 12 34 56 78`, region FR → `+33612345678`); `default_region` (the
      tenant's ISO 3166 country) applies to numbers written without a country code; numbers
      invalid for their numbering plan are rejected.
    - ticketing_id, loyalty_id: NFKC, all whitespace removed, upper-cased (typed by people).
    - app_user_id: whitespace removed, case kept (issued by a backend that compares exactly).
    - external: `source:value`; source lower-cased (a connector name), value as app_user_id.

    Normalising a normalised value returns it unchanged.
    """
    if kind not in IDENTIFIER_KINDS:
        raise InvalidIdentifier(kind, "unknown identifier kind")
    if not isinstance(value, str):
        raise InvalidIdentifier(kind, "must be a string")
    if kind == "email":
        return _normalise_email(value)
    if kind == "phone":
        return _normalise_phone(value, default_region)
    if kind == "external":
        source, sep, rest = value.strip().partition(":")
        source = source.strip().lower()
        if not sep or not _EXTERNAL_SOURCE.fullmatch(source):
            raise InvalidIdentifier(kind, "must be written source:value, e.g. zendesk:123")
        return f"{source}:{_normalise_id(kind, rest)}"
    return _normalise_id(kind, value)


# The common case (plain ASCII, dot-atom local part, LDH domain labels) decided without
# email-validator, which costs ~30 us per address on the ingestion hot path. Anything else,
# and every special-use domain, still goes through the library; a property test checks that
# both paths agree.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}))"
)


def _plain_email(value: str) -> str | None:
    lowered = value.strip().lower()
    match = _PLAIN_EMAIL.fullmatch(lowered)
    if (match is None or len(lowered) > 254 or lowered.index("@") > 64
            or match.group(2) in SPECIAL_USE_DOMAIN_NAMES
            # `ab--…` labels are reserved by IDNA (xn--…): the library's call.
            or any(label[2:4] == "--" for label in match.group(1).split("."))):
        return None
    return lowered


def _normalise_email(value: str) -> str:
    plain = _plain_email(value)
    if plain is not None:
        return plain
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as err:
        raise InvalidIdentifier("email", str(err)) from err
    # Local parts are case-sensitive in theory only; no provider in use treats them so.
    return f"{checked.local_part.lower()}@{checked.ascii_domain.lower()}"


def _normalise_phone(value: str, default_region: str | None) -> str:
    region = default_region.upper() if default_region else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        # A misconfigured tenant, not bad data: fail loudly rather than reject every number.
        raise ValueError(f"unknown default region {default_region!r}")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as err:
        raise InvalidIdentifier("phone", str(err)) from err
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier("phone", "not a valid number for its country")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) > 16:  # "+" and at most 15 digits; the library accepts some longer ones
        raise InvalidIdentifier("phone", "has more than the 15 digits E.164 allows")
    return e164


def _normalise_id(kind: str, value: str) -> str:
    if value.isascii() and value.isprintable() and " " not in value:
        # The common case decided without walking the characters: printable ASCII has no
        # blanks to drop but the space, no format or control characters, and NFKC leaves
        # it unchanged. A property test checks it agrees with the general path.
        compact = value.upper() if kind in _HUMAN_TYPED_IDS else value
        if not compact:
            raise InvalidIdentifier(kind, "is empty")
        if len(compact) > MAX_ID_LENGTH:
            raise InvalidIdentifier(kind, f"is longer than {MAX_ID_LENGTH} characters")
        return compact
    return _normalise_id_general(kind, value)


def _normalise_id_general(kind: str, value: str) -> str:
    compact = _without_blanks(value)
    if kind in _HUMAN_TYPED_IDS:
        # NFKC can turn a character into blank + combining mark, and removing the blank
        # lets the mark compose anew: repeat until stable so normalising stays idempotent.
        for _ in range(4):
            folded = _without_blanks(unicodedata.normalize("NFKC", compact)).upper()
            if folded == compact:
                break
            compact = folded
    if not compact:
        raise InvalidIdentifier(kind, "is empty")
    if len(compact) > MAX_ID_LENGTH:
        raise InvalidIdentifier(kind, f"is longer than {MAX_ID_LENGTH} characters")
    if any(unicodedata.category(char).startswith("C") for char in compact):
        raise InvalidIdentifier(kind, "contains control characters")
    return compact


def _without_blanks(value: str) -> str:
    # Format characters (zero-width space, BOM) arrive with copy-pasted ids and are as
    # invisible as whitespace.
    return "".join(
        char for char in value if not char.isspace() and unicodedata.category(char) != "Cf"
    )


# -- blocked values ----------------------------------------------------------------------


class BlockList(msgspec.Struct, frozen=True, kw_only=True):
    """Values that never identify anyone, keyed by identifier kind or `*` for every kind.

    `values` are compared case-insensitively, `patterns` are regular expressions that must
    match the whole (case-insensitive). Each is tested against the normalised value and its
    meaningful part: the mailbox of an email, the national number of a phone, the value of
    an external id. Kept as data so a tenant overlay can add entries (`extended`).
    """

    values: dict[str, frozenset[str]] = {}
    patterns: dict[str, tuple[str, ...]] = {}

    def extended(self, other: BlockList) -> BlockList:
        kinds = set(self.values) | set(other.values)
        pattern_kinds = set(self.patterns) | set(other.patterns)
        return BlockList(
            values={
                k: self.values.get(k, frozenset()) | other.values.get(k, frozenset()) for k in kinds
            },
            patterns={
                k: self.patterns.get(k, ()) + other.patterns.get(k, ()) for k in pattern_kinds
            },
        )


# Kept as word lists: easy to read, review and extend.
_PLACEHOLDERS = frozenset(
    """
    null none nil undefined n/a na nan unknown inconnu test testing - -- ? . x xx xxx 0
    anonymous anonyme default empty blank missing notset not-set notprovided not-provided
    abc abc123 azerty qwerty asdf abcdef changeme false true
    """.split()
) | {"", "[object object]"}
# Mailboxes people type when a form insists on an email; matched against the local part.
_PLACEHOLDER_MAILBOXES = frozenset(
    """
    noreply no-reply no_reply donotreply do-not-reply nomail no-mail noemail no-email email
    mail nobody personne aucun fake foo bar foobar sample
    """.split()
)

DEFAULT_BLOCK_LIST: Final = BlockList(
    values={"*": _PLACEHOLDERS, "email": _PLACEHOLDER_MAILBOXES},
    patterns={
        "*": (
            r"0+",  # zero is never an issued id
            r"(.)\1{3,}",  # one character repeated: 0000000, XXXX, 1111
            r"0?123456(?:7(?:8(?:90?)?)?)?",  # ascending run typed to get past a form
            r"9?876543(?:2(?:10?)?)?",
        ),
        "email": (
            r"([^@]+)@\1(?:\.[a-z]{2,})+",  # test@test.com, a@a.fr: mailbox repeats the domain
            r"[^@]+@(?:[^@]+\.)?(?:example|test|domain|domaine|nomail|noemail|no-email)"
            r"\.(?:com|net|org|fr)",
        ),
        # On the national significant number: a leading digit (the mobile prefix) followed
        # by a repeated digit or a run, as in 06 00 00 00 00 or 06 12 34 56 78.
        "phone": (r"\d?(\d)\1{5,}", r"\d?0?12345678(?:90?)?", r"\d?9?8765432(?:10?)?"),
    },
)


def is_blocked(
    kind: str,
    normalised_value: str,
    extra: Iterable[str | re.Pattern[str]] = (),
    *,
    block_list: BlockList = DEFAULT_BLOCK_LIST,
) -> bool:
    """Whether this value must never be used to merge profiles.

    `extra` holds a tenant overlay's additions for this kind: strings compared
    case-insensitively, compiled patterns that must match the whole value or part (both
    are matched against case-folded text, so write patterns in lower case).
    """
    folded, patterns = _prepared(block_list, kind)
    if extra:
        extra_values = set()
        extra_patterns = []
        for entry in extra:
            if isinstance(entry, str):
                extra_values.add(entry.casefold())
            else:
                extra_patterns.append(entry)
        if extra_values or extra_patterns:
            folded = folded | extra_values
            patterns = patterns + tuple(extra_patterns)
    # Plain loops: this runs for every new identifier of an ingestion batch.
    for part in _subjects(kind, normalised_value):
        subject = part.casefold()
        if subject in folded:
            return True
        for pattern in patterns:
            if pattern.fullmatch(subject):
                return True
    return False


# Block lists are long-lived (the default, or a tenant's for the life of a batch): fold and
# compile each one once per kind instead of on every identifier (ingestion's hot path).
_PREPARED: dict[tuple[int, str], tuple[BlockList, frozenset[str], tuple[re.Pattern[str], ...]]]
_PREPARED = {}


def _prepared(block_list: BlockList,
              kind: str) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    hit = _PREPARED.get((id(block_list), kind))
    if hit is not None and hit[0] is block_list:
        return hit[1], hit[2]
    values = block_list.values.get("*", frozenset()) | block_list.values.get(kind, frozenset())
    folded = frozenset(value.casefold() for value in values)
    patterns = tuple(
        _compiled(pattern)
        for pattern in block_list.patterns.get("*", ()) + block_list.patterns.get(kind, ())
    )
    if len(_PREPARED) > 1024:  # tenant overlays come and go: keep the memo bounded
        _PREPARED.clear()
    _PREPARED[(id(block_list), kind)] = (block_list, folded, patterns)
    return folded, patterns


def _subjects(kind: str, value: str) -> list[str]:
    subjects = [value.strip()]
    if kind == "email" and "@" in value:
        subjects.append(value.rpartition("@")[0])
    elif kind == "external" and ":" in value:
        subjects.append(value.partition(":")[2])
    elif kind == "phone":
        subjects.append(_national_digits(value))
    return subjects


def _national_digits(value: str) -> str:
    digits = "".join(char for char in value if char.isdigit())
    try:
        country = str(phonenumbers.parse(value, None).country_code)
    except phonenumbers.NumberParseException:
        return digits
    return digits.removeprefix(country)


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# -- hashing -----------------------------------------------------------------------------


def hash_identifier(kind: str, normalised_value: str, salt: bytes) -> str:
    """HMAC-SHA256 (hex) of a normalised identifier, for the GDPR suppression list.

    The suppression list outlives erasure, so it must not be a copy of the identifiers.
    A plain hash would be one in practice: phone numbers and most emails are guessable, and
    hashing every candidate is cheap. Keyed, the digests match nothing outside Relais
    (no precomputed tables, no joining two tenants' lists). The key is per tenant and comes
    from `core.identity.keys.suppression_key`: for tenants created since migration m0304,
    HKDF of the deployment secret and the stored per-tenant salt, so a copy of the database
    alone cannot test guesses; older tenants keep the stored salt as their key (version 1)
    so their entries still match. The kind is part of the message so equal strings of
    different kinds never collide. Use one key wherever opt-outs must match (an all-tenants
    opt-out needs an HQ-wide key); a new key cannot re-hash old entries, so keep old keys
    to check against.
    """
    if kind not in IDENTIFIER_KINDS:
        raise InvalidIdentifier(kind, "unknown identifier kind")
    if len(salt) < _MIN_HASH_KEY_BYTES:
        raise ValueError(f"the hashing key needs at least {_MIN_HASH_KEY_BYTES} bytes")
    message = f"{kind}:{normalised_value}".encode()
    return hmac.new(salt, message, hashlib.sha256).hexdigest()
