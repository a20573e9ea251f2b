"""What the lifecycle canvas needs collected, declared by the canvas itself.

The canvas (`core.lifecycle`) registers a provider with `declare_requirements`; the
collection plan lists each requirement nothing feeds yet. Providers are plain functions of
no argument, registered at import of the module that declares them (like route handlers):
no state, no I/O.

Declared here: what the stage rules of the built-in lifecycle canvas read (derived from its
definition, so it follows the canvas), and what every message needs (email, consent,
personalisation). Other modules add theirs with `declare_requirements`.
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


_CONTACT = "relational plan (contact and personalisation)"


@declare_requirements
def contact_requirements() -> list[Requirement]:
    """What every message of the relational plan needs, whatever the stage."""
    return [
        Requirement("identifier", "email", _CONTACT, "reach customers by email"),
        Requirement("consent", "email.marketing", _CONTACT,
                    "marketing emails need a recorded consent"),
        Requirement("field", "first_name", _CONTACT, "personalise messages"),
        Requirement("field", "language", _CONTACT, "send in the customer's language"),
    ]


@declare_requirements
def lifecycle_requirements() -> list[Requirement]:
    """The events and fields the stage rules of the built-in lifecycle canvas read
    (`core.lifecycle.model.default_version`), found by walking its conditions."""
    try:
        from core.lifecycle.model import default_version
    except ImportError:  # the canvas is optional to the collection plan
        return []
    stages: dict[tuple[str, str], list[str]] = {}
    definition = msgspec.to_builtins(default_version().definition)
    for stage in definition.get("stages", []):
        for reference in _references(stage.get("when")):
            names = stages.setdefault(reference, [])
            if stage.get("name") not in names:
                names.append(stage.get("name"))
    return [Requirement(kind, name, "lifecycle canvas",  # type: ignore[arg-type]
                        f"stage rules: {', '.join(names)}")
            for (kind, name), names in stages.items()]


def _references(node: object) -> Iterable[tuple[str, str]]:
    if isinstance(node, dict):
        events = node.get("event")
        for event in [events] if isinstance(events, str) else events or []:
            if isinstance(event, str):
                yield "event", event
        if isinstance(node.get("field"), str):
            yield "field", node["field"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)
