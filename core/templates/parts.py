"""The parts of a message template (subject, text, html) and the values rendering and
checking exchange about them: sources, rendered messages, problems, variable uses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

import msgspec

from core.errors import InvalidInput

Field = Literal["subject", "text", "html"]
FIELDS: Final[tuple[Field, ...]] = ("subject", "text", "html")
CONTEXT_NAMESPACES: Final = frozenset({"customer", "event", "tenant", "message"})
LAYOUT_CONTENT: Final = "content"
"""The variable through which a layout receives the rendered part it wraps."""

ProblemCode = Literal[
    "too_large",
    "syntax",
    "missing_partial",
    "unknown_filter",
    "unknown_namespace",
    "unknown_variable",
]


class TemplateSource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The Liquid sources of one message; `None` parts are not produced."""

    subject: str | None = None
    text: str
    html: str | None = None


class RenderedMessage(msgspec.Struct, frozen=True, kw_only=True):
    subject: str | None
    text: str
    html: str | None


class TemplateProblem(msgspec.Struct, frozen=True, kw_only=True):
    field: Field
    code: ProblemCode
    message: str
    line: int | None = None
    column: int | None = None
    template: str | None = None
    """Shared partial or layout the problem sits in; `None` means the part itself."""
    variable: str | None = None


class VariableUse(msgspec.Struct, frozen=True, kw_only=True):
    """A global variable a part reads, for checking against the data dictionary."""

    field: Field
    path: str
    """As written, e.g. `event.items[0].price`."""
    dotted: str
    """String segments only (`event.items.price`); stops before a computed index."""
    line: int | None
    column: int | None
    template: str | None


class TemplateRenderError(InvalidInput):
    """A part could not be rendered; `field` is `subject`, `text` or `html`."""

    def __init__(
        self,
        field: Field,
        message: str,
        *,
        line: int | None = None,
        template: str | None = None,
    ) -> None:
        where = f" in '{template}'" if template else ""
        where += f" at line {line}" if line else ""
        super().__init__(f"{field}: {message}{where}", field=field)
        self.message = message
        self.line = line
        self.template = template


def parts_of(source: TemplateSource) -> Iterable[tuple[Field, str]]:
    for field in FIELDS:
        text = getattr(source, field)
        if text is not None:
            yield field, text


def part_name(field: Field) -> str:
    # Angle brackets keep the part's own name apart from shared template names.
    return f"<{field}>"


def dotted(segments: list[Any]) -> str:
    names: list[str] = []
    for segment in segments:
        if isinstance(segment, list):
            break
        if isinstance(segment, str):
            names.append(segment)
    return ".".join(names)
