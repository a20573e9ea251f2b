"""Which locale a message is rendered in: the customer's language, else the tenant's
default, else HQ's, matched against the locales a template is available in."""

from __future__ import annotations

import re
from collections.abc import Iterable

_LOCALE_TAG = re.compile(r"[a-z]{2,8}(?:-[a-z0-9]{1,8})*")


def choose_locale(
    customer_language: str | None,
    tenant_default: str,
    hq_default: str,
    available: Iterable[str],
) -> str:
    """The locale to render in, always one of `available` (as spelled there).

    Preferences are tried in order — customer, tenant default, HQ default — and the first
    that matches anything wins. A preference matches, best first: the same tag (case and
    `_`/`-` ignored); a shorter form of it (`fr-CA` → `fr`, `zh-Hant-TW` → `zh-Hant`); a
    sibling with the same language and no conflicting script (`fr` → `fr-FR`, `fr-CA` →
    `fr-BE`), preferring the region named like the language (`fr-FR`), then listing order.
    A French speaker reads the Belgian variant better than the tenant's English default.
    Malformed preferences are skipped; if nothing matches, the first available locale.
    """
    candidates = [(tag, parsed) for tag in available if (parsed := _parse_locale(tag))]
    if not candidates:
        raise ValueError("no valid locale available")
    for preference in (customer_language, tenant_default, hq_default):
        wanted = _parse_locale(preference)
        if wanted is not None and (match := _match_locale(wanted, candidates)) is not None:
            return match
    return candidates[0][0]


def _parse_locale(tag: str | None) -> tuple[str, ...] | None:
    if not tag:
        return None
    normalised = tag.strip().replace("_", "-").lower()
    if not _LOCALE_TAG.fullmatch(normalised):
        return None
    return tuple(normalised.split("-"))


def _script(subtags: tuple[str, ...]) -> str | None:
    if len(subtags) > 1 and len(subtags[1]) == 4 and subtags[1].isalpha():
        return subtags[1]
    return None


def _region(subtags: tuple[str, ...]) -> str | None:
    for subtag in subtags[1:3]:
        if (len(subtag) == 2 and subtag.isalpha()) or (len(subtag) == 3 and subtag.isdigit()):
            return subtag
    return None


def _match_locale(
    wanted: tuple[str, ...], candidates: list[tuple[str, tuple[str, ...]]]
) -> str | None:
    for length in range(len(wanted), 0, -1):
        for tag, parsed in candidates:
            if parsed == wanted[:length]:
                return tag
    script = _script(wanted)
    siblings = [
        (tag, parsed)
        for tag, parsed in candidates
        if parsed[0] == wanted[0] and (script is None or _script(parsed) in (None, script))
    ]
    if not siblings:
        return None
    for tag, parsed in siblings:
        if _region(parsed) == wanted[0]:
            return tag
    return siblings[0][0]
