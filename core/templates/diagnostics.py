"""Where a template problem sits (part or shared template, line, column) and how a failed
render is told to the author."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from liquid.exceptions import (
    ContextDepthError,
    LiquidError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    ResourceLimitError,
    TemplateNotFoundError,
)

from core.templates.parts import Field, TemplateRenderError, part_name
from core.templates.sandbox import RenderLimits

Position = tuple[int | None, int | None, str | None]
"""Line, column and the shared template (`None`: the part itself)."""


class Locator:
    """Positions of Liquid errors and analysis spans, in the part or in a shared template."""

    def __init__(self, shared: Mapping[str, str]) -> None:
        self._shared = dict(shared)
        self._shared_names_by_source = {src: name for name, src in self._shared.items()}

    def error(self, source: str, err: LiquidError) -> Position:
        token = err.token
        if token is None or token.start_index < 0:
            return None, None, None
        # Liquid does not name the partial an error came from, but the token carries the
        # source text it was read from, which identifies the shared template.
        where = None if token.source == source else self._shared_names_by_source.get(token.source)
        try:
            line, column = line_col(token.source, token.start_index)
        except ValueError:
            return None, None, where
        return line, column, where

    def span(self, field: Field, text: str, span: Any) -> Position:
        if span.template_name == part_name(field):
            where, source = None, text
        else:
            where, source = span.template_name, self._shared.get(span.template_name, "")
        try:
            line, column = line_col(source, span.index)
        except ValueError:
            return None, None, where
        return line, column, where


def render_error(
    field: Field,
    source: str,
    err: LiquidError | RecursionError,
    locator: Locator,
    limits: RenderLimits,
) -> TemplateRenderError:
    if isinstance(err, RecursionError):
        return TemplateRenderError(field, "template nests too deeply")
    line, _column, template = locator.error(source, err)
    message = str(err.message)
    if isinstance(err, TemplateNotFoundError):
        message = f"partial '{err.message}' does not exist"
    elif isinstance(err, ResourceLimitError):
        message = f"{message} ({_limit_hint(err, limits)})"
    return TemplateRenderError(field, message, line=line, template=template)


def _limit_hint(err: ResourceLimitError, limits: RenderLimits) -> str:
    if isinstance(err, LoopIterationLimitError):
        return f"at most {limits.max_loop_iterations} iterations"
    if isinstance(err, OutputStreamLimitError):
        return f"at most {limits.max_output_bytes} bytes"
    if isinstance(err, LocalNamespaceLimitError):
        return f"at most {limits.max_assigned_bytes} bytes assigned"
    if isinstance(err, ContextDepthError):
        return f"at most {limits.max_render_depth} nested scopes"
    return "resource limit"


def too_large_message(limits: RenderLimits) -> str:
    return f"template is longer than {limits.max_source_chars} characters"


def line_col(source: str, index: int) -> tuple[int, int]:
    """1-based line and column of `index` in `source`."""
    if not 0 <= index <= len(source):
        raise ValueError("index outside source")
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return line, column
