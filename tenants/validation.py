"""Checks on tenant attributes that a JSON schema pattern cannot express."""

from __future__ import annotations

import re
import zoneinfo
from functools import cache

import phonenumbers

from core.errors import InvalidInput

_LOCALE = re.compile(r"^([a-zA-Z]{2,3})(?:[-_]([a-zA-Z]{4}))?(?:[-_]([a-zA-Z]{2}|[0-9]{3}))?$")
# phonenumbers' region list is ISO 3166-1 alpha-2 plus a few telecom-only codes.
_NON_ISO_REGIONS = {"AC", "TA", "001"}


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_country(country: str, field: str = "country") -> str:
    if country not in phonenumbers.SUPPORTED_REGIONS or country in _NON_ISO_REGIONS:
        raise InvalidInput(f"{country!r} is not an ISO 3166-1 alpha-2 country code", field=field)
    return country


def check_timezone(timezone: str, field: str = "timezone") -> str:
    if timezone not in _timezones():
        raise InvalidInput(f"{timezone!r} is not an IANA time zone (e.g. Europe/Paris)",
                           field=field)
    return timezone


def normalise_locale(locale: str, field: str = "locale") -> str:
    """BCP 47 language[-Script][-REGION], canonical case: `fr-fr` → `fr-FR`."""
    match = _LOCALE.match(locale)
    if not match:
        raise InvalidInput(f"{locale!r} is not a BCP 47 locale (e.g. fr-FR)", field=field)
    language, script, region = match.groups()
    parts = [language.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)


def check_locales(default_locale: str, locales: list[str]) -> tuple[str, list[str]]:
    default = normalise_locale(default_locale, "default_locale")
    normalised = [normalise_locale(loc, f"locales[{i}]") for i, loc in enumerate(locales)]
    ordered = [default, *[loc for loc in normalised if loc != default]]
    return default, list(dict.fromkeys(ordered))
