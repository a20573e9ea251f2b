"""What the lifecycle canvas needs collected, declared by the canvas itself.

The canvas (`core.lifecycle`) registers a provider with `declare_requirements`; the
collection plan lists each requirement nothing feeds yet. Providers are plain functions of
no argument, registered at import of the module that declares them (like route handlers):
no state, no I/O.

Until the canvas declares its own, `default_lifecycle_requirements` states what the
standard cycle (prospect → customer → loyal → fragile → inactive) of DESIGN.md runs on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import msgspec

ItemKind = Literal["field", "identifier", "event", "consent"]


class Requirement(msgspec.Struct, frozen=True):
    kind: ItemKind
    # field / identifier kind / event type / consent `channel.purpose`
    name: str
    needed_by: str
    reason: str = ""


Provider = Callable[[], Iterable[Requirement]]
_PROVIDERS: list[Provider] = []


def declare_requirements(provider: Provider) -> Provider:
    """Register a provider of requirements (usable as a decorator)."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


def withdraw_requirements(provider: Provider) -> None:
    if provider in _PROVIDERS:
        _PROVIDERS.remove(provider)


def canvas_requirements() -> list[Requirement]:
    seen: dict[tuple[str, str, str], Requirement] = {}
    for provider in _PROVIDERS:
        for requirement in provider():
            seen.setdefault((requirement.kind, requirement.name, requirement.needed_by),
                            requirement)
    return sorted(seen.values(), key=lambda r: (r.kind, r.name, r.needed_by))


_CANVAS = "lifecycle canvas (default)"


@declare_requirements
def default_lifecycle_requirements() -> list[Requirement]:
    return [
        Requirement("identifier", "email", _CANVAS, "reach customers by email"),
        Requirement("consent", "email.marketing", _CANVAS,
                    "marketing emails need a recorded consent"),
        Requirement("field", "first_name", _CANVAS, "personalise messages"),
        Requirement("field", "language", _CANVAS, "send in the customer's language"),
        Requirement("event", "ticket_purchased", _CANVAS,
                    "prospect → customer → loyal transitions"),
        Requirement("event", "trip_validated", _CANVAS, "activity: fragile and inactive"),
        Requirement("event", "nps_submitted", _CANVAS, "NPS under a threshold: fragile"),
    ]
