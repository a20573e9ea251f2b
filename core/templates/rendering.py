"""Liquid rendering of message templates, sandboxed for tenant-authored sources.

A `Renderer` is built from explicit inputs only: the shared HQ layouts and partials (already
resolved as global ⊕ tenant overlay by the caller), the layouts that wrap each part, and the
resource limits. Nothing is read from the filesystem or from module globals, so two tenants
never see each other's partials and a renderer can be rebuilt from a template version alone.

Rules a sent message relies on:
- an undefined variable is an error, and so is printing a nil value (`core.templates.sandbox`);
- the html part is auto-escaped (customer data reaches it), subject and text are not;
- resources are bounded (`RenderLimits`), so a tenant template cannot hang or exhaust a worker.

Around it: `parts` (the values exchanged), `sandbox` (the Liquid environment and its limits),
`analysis` (checks without data), `diagnostics` (error positions), `locales` (which locale).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from liquid import Environment, Markup
from liquid.exceptions import LiquidError

from core.errors import ConfigurationError
from core.templates.analysis import Analyser
from core.templates.diagnostics import Locator, render_error, too_large_message
from core.templates.locales import choose_locale
from core.templates.parts import (
    CONTEXT_NAMESPACES,
    LAYOUT_CONTENT,
    Field,
    RenderedMessage,
    TemplateProblem,
    TemplateRenderError,
    TemplateSource,
    VariableUse,
    part_name,
)
from core.templates.sandbox import RenderLimits, sandboxed_environment

# Imported from here by callers outside this package (core.messaging, the tests).
__all__ = ["RenderLimits", "Renderer", "TemplateRenderError", "TemplateSource", "choose_locale"]

_ONE_LINE = re.compile(r"\s*[\r\n]+\s*")


class Renderer:
    """Renders `TemplateSource`s against a context of the allowed namespaces.

    `shared` maps names to Liquid sources usable with `{% render %}`/`{% include %}` and as
    layouts. A layout must print `{{ content }}`, where the rendered part is placed; the
    html layout is how HQ's editorial charter wraps every email.
    """

    def __init__(
        self,
        shared: Mapping[str, str] | None = None,
        *,
        html_layout: str | None = None,
        text_layout: str | None = None,
        limits: RenderLimits = RenderLimits(),
        namespaces: Collection[str] = CONTEXT_NAMESPACES,
        cache_size: int = 256,
    ) -> None:
        self._shared = dict(shared or {})
        self._layouts: dict[Field, str | None] = {
            "subject": None,
            "text": text_layout,
            "html": html_layout,
        }
        self.limits = limits
        self.namespaces = frozenset(namespaces)
        self._plain = sandboxed_environment(self._shared, limits, autoescape=False)
        self._html = sandboxed_environment(self._shared, limits, autoescape=True)
        self._locator = Locator(self._shared)
        # Tenant templates repeat across a whole audience: parse each source once.
        self._compile = functools.lru_cache(maxsize=cache_size)(self._compile_uncached)
        self._analyser = Analyser(compile=self._compile, env=self._env, locator=self._locator,
                                  limits=limits, namespaces=self.namespaces)
        self._check_shared()

    def render(self, source: TemplateSource, context: Mapping[str, Any]) -> RenderedMessage:
        unknown = set(context) - self.namespaces
        if unknown:
            raise ValueError(f"context has unknown namespaces: {sorted(unknown)}")
        subject = html = None
        if source.subject is not None:
            # Subjects become a mail header: a newline from data must not fold or inject.
            rendered = self._render_part("subject", source.subject, context)
            subject = _ONE_LINE.sub(" ", rendered).strip()
        if source.html is not None:
            html = self._render_part("html", source.html, context)
        text = self._render_part("text", source.text, context)
        return RenderedMessage(subject=subject, text=text, html=html)

    def validate(
        self,
        source: TemplateSource,
        *,
        is_known_variable: Callable[[str], bool] | None = None,
    ) -> list[TemplateProblem]:
        """Problems that would make rendering fail, found without any data.

        `is_known_variable` receives each `VariableUse.dotted` path (e.g. the tenant's data
        dictionary of core and extension fields); unknown paths are reported.
        """
        return self._analyser.validate(source, is_known_variable=is_known_variable)

    def variables(self, source: TemplateSource) -> list[VariableUse]:
        """Global variables each part reads (shared partials included), in source order.

        Raises `TemplateRenderError` if a part does not parse; `validate` reports that.
        """
        return self._analyser.variables(source)

    def _render_part(self, field: Field, source: str, context: Mapping[str, Any]) -> str:
        if len(source) > self.limits.max_source_chars:
            raise TemplateRenderError(field, too_large_message(self.limits))
        env = self._env(field)
        try:
            body = self._compile(field, source).render(context)
            layout = self._layouts[field]
            if layout is None:
                return body
            content = Markup(body) if field == "html" else body
            return env.get_template(layout).render({**context, LAYOUT_CONTENT: content})
        except (LiquidError, RecursionError) as err:
            raise render_error(field, source, err, self._locator, self.limits) from err

    def _env(self, field: Field) -> Environment:
        return self._html if field == "html" else self._plain

    def _compile_uncached(self, field: Field, source: str) -> Any:
        return self._env(field).from_string(source, name=part_name(field))

    def _check_shared(self) -> None:
        problems = []
        for name, source in self._shared.items():
            try:
                template = self._plain.from_string(source, name=name)
            except LiquidError as err:
                line, _column, _where = self._locator.error(source, err)
                problems.append(f"{name}: {err.message}" + (f" at line {line}" if line else ""))
                continue
            if name in self._layouts.values() and LAYOUT_CONTENT not in template.variables(
                include_partials=False
            ):
                problems.append(f"{name}: a layout must print {{{{ {LAYOUT_CONTENT} }}}}")
        for layout in self._layouts.values():
            if layout is not None and layout not in self._shared:
                problems.append(f"layout '{layout}' is not among the shared templates")
        if problems:
            raise ConfigurationError("invalid shared templates: " + "; ".join(problems))
