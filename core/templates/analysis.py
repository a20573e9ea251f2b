"""Static checks of a template, without any data: what would make rendering fail (size,
syntax, missing partials, unknown filters, variables outside the allowed namespaces or the
data dictionary), and which variables each part reads."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from liquid import Environment
from liquid.exceptions import LiquidError, TemplateNotFoundError

from core.templates.diagnostics import Locator, render_error, too_large_message
from core.templates.parts import (
    Field,
    ProblemCode,
    TemplateProblem,
    TemplateSource,
    VariableUse,
    dotted,
    part_name,
    parts_of,
)
from core.templates.sandbox import RenderLimits


class Analyser:
    """Checks sources with a renderer's own environments, parse cache and limits, so what
    it accepts is exactly what that renderer can render."""

    def __init__(
        self,
        *,
        compile: Callable[[Field, str], Any],
        env: Callable[[Field], Environment],
        locator: Locator,
        limits: RenderLimits,
        namespaces: Collection[str],
    ) -> None:
        self._compile = compile
        self._env = env
        self._locator = locator
        self._limits = limits
        self._namespaces = frozenset(namespaces)

    def validate(
        self,
        source: TemplateSource,
        *,
        is_known_variable: Callable[[str], bool] | None = None,
    ) -> list[TemplateProblem]:
        problems: list[TemplateProblem] = []
        for field, text in parts_of(source):
            if len(text) > self._limits.max_source_chars:
                problems.append(
                    TemplateProblem(
                        field=field, code="too_large", message=too_large_message(self._limits)
                    )
                )
                continue
            try:
                template = self._compile(field, text)
            except LiquidError as err:
                problems.append(self._syntax_problem(field, text, err))
                continue
            try:
                analysis = template.analyze(include_partials=True)
            except TemplateNotFoundError as err:
                line, column, where = self._locator.error(text, err)
                problems.append(
                    TemplateProblem(
                        field=field,
                        code="missing_partial",
                        message=f"partial '{err.message}' does not exist",
                        line=line,
                        column=column,
                        template=where,
                    )
                )
                analysis = template.analyze(include_partials=False)
            env = self._env(field)
            for name, spans in analysis.filters.items():
                if name not in env.filters:
                    line, column, where = self._locator.span(field, text, spans[0])
                    problems.append(
                        TemplateProblem(
                            field=field,
                            code="unknown_filter",
                            message=f"unknown filter '{name}'",
                            line=line,
                            column=column,
                            template=where,
                        )
                    )
            for use in self._variable_uses(field, text, analysis):
                root = use.dotted.split(".", 1)[0]
                if root not in self._namespaces:
                    code: ProblemCode = "unknown_namespace"
                    message = f"'{use.path}' is outside {sorted(self._namespaces)}"
                elif is_known_variable is not None and not is_known_variable(use.dotted):
                    code, message = "unknown_variable", f"'{use.path}' is not a known field"
                else:
                    continue
                problems.append(
                    TemplateProblem(
                        field=field,
                        code=code,
                        message=message,
                        line=use.line,
                        column=use.column,
                        template=use.template,
                        variable=use.path,
                    )
                )
        return problems

    def variables(self, source: TemplateSource) -> list[VariableUse]:
        uses: list[VariableUse] = []
        for field, text in parts_of(source):
            try:
                analysis = self._compile(field, text).analyze(include_partials=True)
            except LiquidError as err:
                raise render_error(field, text, err, self._locator, self._limits) from err
            uses.extend(self._variable_uses(field, text, analysis))
        return uses

    def _variable_uses(self, field: Field, text: str, analysis: Any) -> list[VariableUse]:
        uses = []
        for variables in analysis.globals.values():
            for variable in variables:
                line, column, where = self._locator.span(field, text, variable.span)
                uses.append(
                    VariableUse(
                        field=field,
                        path=str(variable),
                        dotted=dotted(variable.segments),
                        line=line,
                        column=column,
                        template=where,
                    )
                )
        return sorted(uses, key=lambda use: (use.template or "", use.line or 0, use.path))

    def _syntax_problem(self, field: Field, text: str, err: LiquidError) -> TemplateProblem:
        line, column, where = self._locator.error(text, err)
        if line is None:
            # Errors found at end of input ("expected endif") carry no position; the tag
            # audit (of the plain environment) still knows where the unclosed block opened.
            audit = self._env("text").analyze_tags_from_string(text, name=part_name(field))
            opened = [span for spans in audit.unclosed_tags.values() for span in spans]
            if opened:
                line, column, where = self._locator.span(field, text, min(opened, key=_index))
        return TemplateProblem(
            field=field,
            code="syntax",
            message=str(err.message),
            line=line,
            column=column,
            template=where,
        )


def _index(span: Any) -> int:
    return int(span.index)
