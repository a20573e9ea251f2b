"""Checks of template content that need no database: what each channel requires, and the
static analysis of the Liquid sources (syntax, partials, filters, namespaces, fields)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from core.errors import ConfigurationError, InvalidInput
from core.templates.parts import TemplateProblem, TemplateSource
from core.templates.rendering import Renderer
from core.templates.schemas import Content

# Problems that make a template unusable whatever the data: refused at HQ publication and
# at tenant submission. `unknown_variable` depends on the tenant's data dictionary.
BLOCKING = frozenset({"too_large", "syntax", "missing_partial", "unknown_filter",
                      "unknown_namespace"})


def check_channel_content(channel: str, content: Content, field: str) -> None:
    if channel == "email" and not content.subject:
        raise InvalidInput("an email needs a subject", field=f"{field}.subject")
    if channel == "whatsapp" and not content.provider_template:
        raise InvalidInput("a WhatsApp message is a provider-approved template: name it",
                           field=f"{field}.provider_template")
    if channel in ("sms", "whatsapp", "push") and content.html is not None:
        raise InvalidInput(f"a {channel} message has no html part", field=f"{field}.html")
    if channel != "whatsapp" and (content.params or content.provider_template):
        raise InvalidInput("params and provider_template only apply to WhatsApp",
                           field=f"{field}.params")


def source_of(content: Content) -> TemplateSource:
    return TemplateSource(subject=content.subject, text=content.text, html=content.html)


@functools.lru_cache(maxsize=64)
def _renderer(shared: tuple[tuple[str, str], ...], html_layout: str | None,
              text_layout: str | None) -> Renderer:
    return Renderer(dict(shared), html_layout=html_layout, text_layout=text_layout)


def renderer_for(partials: Mapping[str, str], html_layout: str | None = None,
                 text_layout: str | None = None) -> Renderer:
    """A renderer over the shared partials, cached: building one parses every partial, and a
    dispatch batch renders thousands of messages with the same few."""
    return _renderer(tuple(sorted(partials.items())), html_layout, text_layout)


def checked_renderer(partials: Mapping[str, str], html_layout: str | None,
                     text_layout: str | None, field: str) -> Renderer:
    try:
        return renderer_for(partials, html_layout, text_layout)
    except ConfigurationError as exc:
        raise InvalidInput(exc.detail, field=field) from None


def analyse(renderer: Renderer, plain: Renderer, content: Content,
            is_known_variable: Callable[[str], bool] | None = None) -> list[TemplateProblem]:
    """Problems of every part; WhatsApp params are analysed as text (without layout)."""
    problems = renderer.validate(source_of(content), is_known_variable=is_known_variable)
    for i, param in enumerate(content.params):
        for problem in plain.validate(TemplateSource(text=param),
                                      is_known_variable=is_known_variable):
            problems.append(_as_param(problem, i))
    return problems


def _as_param(problem: TemplateProblem, index: int) -> TemplateProblem:
    # Reported against `text` by the renderer; the message says which parameter.
    return TemplateProblem(field=problem.field, code=problem.code,
                           message=f"params[{index}]: {problem.message}", line=problem.line,
                           column=problem.column, template=problem.template,
                           variable=problem.variable)


def refuse_blocking(problems: list[TemplateProblem], field: str) -> None:
    for problem in problems:
        if problem.code in BLOCKING or problem.code == "unknown_variable":
            where = f" at line {problem.line}" if problem.line else ""
            part = "params" if problem.message.startswith("params[") else problem.field
            raise InvalidInput(f"{problem.message}{where}", field=f"{field}.{part}",
                               code=problem.code)
