"""Liquid rendering of message templates, sandboxed for tenant-authored sources.

A `Renderer` is built from explicit inputs only: the shared HQ layouts and partials (already
resolved as global ⊕ tenant overlay by the caller), the layouts that wrap each part, and the
resource limits. Nothing is read from the filesystem or from module globals, so two tenants
never see each other's partials and a renderer can be rebuilt from a template version alone.

Rules a sent message relies on:
- an undefined variable is an error, and so is printing a nil value: a blank where a first
  name should be is worse than not sending (`| default: "..."` is the explicit way out);
- the html part is auto-escaped (customer data reaches it), subject and text are not;
- loops, output size, assigned data and render nesting are bounded, so a tenant template
  cannot hang or exhaust a worker. There is no wall-clock limit: jobs keep their own timeout.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final, Literal

import msgspec
from liquid import CachingDictLoader, Environment, Markup, StrictDefaultUndefined, Undefined
from liquid.builtin.output import Output, OutputNode
from liquid.builtin.tags.echo_tag import EchoNode, EchoTag
from liquid.exceptions import (
    ContextDepthError,
    LiquidError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    ResourceLimitError,
    TemplateNotFoundError,
    UndefinedError,
)
from liquid.stringify import to_liquid_string

from core.errors import ConfigurationError, InvalidInput

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

# `safe` would let a template print customer data unescaped into html; layouts receive
# their content already marked safe, so nothing legitimate needs it.
_REMOVED_FILTERS: Final = frozenset({"safe"})


class TemplateSource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The Liquid sources of one message; `None` parts are not produced."""

    subject: str | None = None
    text: str
    html: str | None = None


class RenderedMessage(msgspec.Struct, frozen=True, kw_only=True):
    subject: str | None
    text: str
    html: str | None


class RenderLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_source_chars: int = 100_000
    """Largest template source accepted, checked before parsing."""
    max_loop_iterations: int = 10_000
    """Iterations of one loop, multiplied through nested loops and partials."""
    max_output_bytes: int = 512 * 1024
    """UTF-8 bytes of one rendered part; also bounds any single filter result."""
    max_assigned_bytes: int = 1024 * 1024
    """Approximate size of everything `assign`ed while rendering one part."""
    max_render_depth: int = 20
    """Nested scopes: render/include of partials and nested for loops."""


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
        self._shared_names_by_source = {src: name for name, src in self._shared.items()}
        self._layouts: dict[Field, str | None] = {
            "subject": None,
            "text": text_layout,
            "html": html_layout,
        }
        self.limits = limits
        self.namespaces = frozenset(namespaces)
        self._plain = _sandboxed_environment(self._shared, limits, autoescape=False)
        self._html = _sandboxed_environment(self._shared, limits, autoescape=True)
        # Tenant templates repeat across a whole audience: parse each source once.
        self._compile = functools.lru_cache(maxsize=cache_size)(self._compile_uncached)
        self._check_shared()

    # -- rendering ---------------------------------------------------------------------

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

    def _render_part(self, field: Field, source: str, context: Mapping[str, Any]) -> str:
        if len(source) > self.limits.max_source_chars:
            raise TemplateRenderError(field, self._too_large_message())
        env = self._env(field)
        try:
            body = self._compile(field, source).render(context)
            layout = self._layouts[field]
            if layout is None:
                return body
            content = Markup(body) if field == "html" else body
            return env.get_template(layout).render({**context, LAYOUT_CONTENT: content})
        except (LiquidError, RecursionError) as err:
            raise self._render_error(field, source, err) from err

    def _render_error(
        self, field: Field, source: str, err: LiquidError | RecursionError
    ) -> TemplateRenderError:
        if isinstance(err, RecursionError):
            return TemplateRenderError(field, "template nests too deeply")
        line, _column, template = self._locate_error(source, err)
        message = str(err.message)
        if isinstance(err, TemplateNotFoundError):
            message = f"partial '{err.message}' does not exist"
        elif isinstance(err, ResourceLimitError):
            message = f"{message} ({self._limit_hint(err)})"
        return TemplateRenderError(field, message, line=line, template=template)

    def _limit_hint(self, err: ResourceLimitError) -> str:
        limits = self.limits
        if isinstance(err, LoopIterationLimitError):
            return f"at most {limits.max_loop_iterations} iterations"
        if isinstance(err, OutputStreamLimitError):
            return f"at most {limits.max_output_bytes} bytes"
        if isinstance(err, LocalNamespaceLimitError):
            return f"at most {limits.max_assigned_bytes} bytes assigned"
        if isinstance(err, ContextDepthError):
            return f"at most {limits.max_render_depth} nested scopes"
        return "resource limit"

    # -- validation ----------------------------------------------------------------------

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
        problems: list[TemplateProblem] = []
        for field, text in _parts(source):
            if len(text) > self.limits.max_source_chars:
                problems.append(
                    TemplateProblem(
                        field=field, code="too_large", message=self._too_large_message()
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
                line, column, where = self._locate_error(text, err)
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
                    line, column, where = self._locate_span(field, text, spans[0])
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
                if root not in self.namespaces:
                    code: ProblemCode = "unknown_namespace"
                    message = f"'{use.path}' is outside {sorted(self.namespaces)}"
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
        """Global variables each part reads (shared partials included), in source order.

        Raises `TemplateRenderError` if a part does not parse; `validate` reports that.
        """
        uses: list[VariableUse] = []
        for field, text in _parts(source):
            try:
                analysis = self._compile(field, text).analyze(include_partials=True)
            except LiquidError as err:
                raise self._render_error(field, text, err) from err
            uses.extend(self._variable_uses(field, text, analysis))
        return uses

    def _variable_uses(self, field: Field, text: str, analysis: Any) -> list[VariableUse]:
        uses = []
        for variables in analysis.globals.values():
            for variable in variables:
                line, column, where = self._locate_span(field, text, variable.span)
                uses.append(
                    VariableUse(
                        field=field,
                        path=str(variable),
                        dotted=_dotted(variable.segments),
                        line=line,
                        column=column,
                        template=where,
                    )
                )
        return sorted(uses, key=lambda use: (use.template or "", use.line or 0, use.path))

    def _syntax_problem(self, field: Field, text: str, err: LiquidError) -> TemplateProblem:
        line, column, where = self._locate_error(text, err)
        if line is None:
            # Errors found at end of input ("expected endif") carry no position; the tag
            # audit still knows where the unclosed block opened.
            audit = self._plain.analyze_tags_from_string(text, name=_part_name(field))
            opened = [span for spans in audit.unclosed_tags.values() for span in spans]
            if opened:
                line, column, where = self._locate_span(field, text, min(opened, key=_index))
        return TemplateProblem(
            field=field,
            code="syntax",
            message=str(err.message),
            line=line,
            column=column,
            template=where,
        )

    # -- helpers -------------------------------------------------------------------------

    def _env(self, field: Field) -> Environment:
        return self._html if field == "html" else self._plain

    def _compile_uncached(self, field: Field, source: str) -> Any:
        return self._env(field).from_string(source, name=_part_name(field))

    def _too_large_message(self) -> str:
        return f"template is longer than {self.limits.max_source_chars} characters"

    def _locate_error(
        self, source: str, err: LiquidError
    ) -> tuple[int | None, int | None, str | None]:
        token = err.token
        if token is None or token.start_index < 0:
            return None, None, None
        # Liquid does not name the partial an error came from, but the token carries the
        # source text it was read from, which identifies the shared template.
        where = None if token.source == source else self._shared_names_by_source.get(token.source)
        try:
            line, column = _line_col(token.source, token.start_index)
        except ValueError:
            return None, None, where
        return line, column, where

    def _locate_span(
        self, field: Field, text: str, span: Any
    ) -> tuple[int | None, int | None, str | None]:
        if span.template_name == _part_name(field):
            where, source = None, text
        else:
            where, source = span.template_name, self._shared.get(span.template_name, "")
        try:
            line, column = _line_col(source, span.index)
        except ValueError:
            return None, None, where
        return line, column, where

    def _check_shared(self) -> None:
        problems = []
        for name, source in self._shared.items():
            try:
                template = self._plain.from_string(source, name=name)
            except LiquidError as err:
                line, _column, _where = self._locate_error(source, err)
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


# -- sandboxed environment ---------------------------------------------------------------


def _sandboxed_environment(
    shared: dict[str, str], limits: RenderLimits, *, autoescape: bool
) -> Environment:
    # Liquid reads its limits from class attributes, so each renderer gets its own class.
    class SandboxedEnvironment(Environment):
        loop_iteration_limit = limits.max_loop_iterations
        output_stream_limit = limits.max_output_bytes
        local_namespace_limit = limits.max_assigned_bytes
        context_depth_limit = limits.max_render_depth

    env = SandboxedEnvironment(
        loader=CachingDictLoader(shared, auto_reload=False),
        undefined=StrictDefaultUndefined,
        strict_filters=True,
        autoescape=autoescape,
    )
    env.add_tag(_NilIsErrorOutput)
    env.add_tag(_NilIsErrorEcho)
    for name in _REMOVED_FILTERS:
        env.filters.pop(name, None)
    for name, func in list(env.filters.items()):
        env.filters[name] = _bounded_filter(name, func, limits)
    return env


def _refuse_nil(node: OutputNode, value: object) -> object:
    if value is None:
        raise UndefinedError(
            f"'{node.expression}' is nil; give it a fallback with the default filter",
            token=node.token,
        )
    return value


class _NilIsErrorOutputNode(OutputNode):
    def render_to_output(self, context: Any, buffer: Any) -> int:
        value = _refuse_nil(self, self.expression.evaluate(context))
        return buffer.write(to_liquid_string(value, context.autoescape))

    async def render_to_output_async(self, context: Any, buffer: Any) -> int:
        value = _refuse_nil(self, await self.expression.evaluate_async(context))
        return buffer.write(to_liquid_string(value, context.autoescape))


class _NilIsErrorEchoNode(EchoNode):
    render_to_output = _NilIsErrorOutputNode.render_to_output
    render_to_output_async = _NilIsErrorOutputNode.render_to_output_async


class _NilIsErrorOutput(Output):
    node_class = _NilIsErrorOutputNode


class _NilIsErrorEcho(EchoTag):
    node_class = _NilIsErrorEchoNode


def _bounded_filter(
    name: str, func: Callable[..., Any], limits: RenderLimits
) -> Callable[..., Any]:
    """Refuse filter calls whose result would blow past the output limit.

    The output limit is only checked when text reaches the output buffer; without this, a
    `(1..1000000000) | join` or a chain of `replace` would build gigabytes first.
    """
    budget = limits.max_output_bytes

    def bounded(left: object, *args: object, **kwargs: object) -> object:
        # Checked first and through type(): isinstance() reads `__class__`, which a strict
        # undefined refuses, and `| default:` must still receive it.
        if _is_undefined(left):
            return func(left, *args, **kwargs)
        if isinstance(left, range) and len(left) > limits.max_loop_iterations:
            raise LoopIterationLimitError(f"{name}: range of {len(left)} items", token=None)
        estimate = _size(left, budget) + sum(_size(arg, budget) for arg in args)
        if name == "join" and args and isinstance(left, list | tuple | range):
            estimate += len(left) * _size(args[0], budget)
        elif name == "replace" and len(args) >= 2 and isinstance(left, str):
            old, new = str(args[0]), args[1]
            estimate += (left.count(old) if old else len(left)) * _size(new, budget)
        if estimate > budget:
            raise OutputStreamLimitError(
                f"{name}: result would exceed the output limit", token=None
            )
        result = func(left, *args, **kwargs)
        if isinstance(result, str) and len(result) > budget:
            raise OutputStreamLimitError(f"{name}: result exceeds the output limit", token=None)
        return result

    # The environment looks these markers up on the callable to pass context/environment.
    for marker in ("with_context", "with_environment", "validate"):
        if hasattr(func, marker):
            setattr(bounded, marker, getattr(func, marker))
    return bounded


def _is_undefined(value: object) -> bool:
    return issubclass(type(value), Undefined)


def _size(value: object, budget: int) -> int:
    """Approximate text size of a value, stopping once it exceeds `budget`."""
    if _is_undefined(value):
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, range):
        return len(value)
    if isinstance(value, list | tuple):
        total = 0
        for item in value:
            total += _size(item, budget) + 1
            if total > budget:
                break
        return total
    return 0


# -- small pure helpers ------------------------------------------------------------------

_ONE_LINE = re.compile(r"\s*[\r\n]+\s*")


def _parts(source: TemplateSource) -> Iterable[tuple[Field, str]]:
    for field in FIELDS:
        text = getattr(source, field)
        if text is not None:
            yield field, text


def _part_name(field: Field) -> str:
    # Angle brackets keep the part's own name apart from shared template names.
    return f"<{field}>"


def _dotted(segments: list[Any]) -> str:
    names: list[str] = []
    for segment in segments:
        if isinstance(segment, list):
            break
        if isinstance(segment, str):
            names.append(segment)
    return ".".join(names)


def _index(span: Any) -> int:
    return int(span.index)


def _line_col(source: str, index: int) -> tuple[int, int]:
    """1-based line and column of `index` in `source`."""
    if not 0 <= index <= len(source):
        raise ValueError("index outside source")
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return line, column


# -- locale choice -----------------------------------------------------------------------

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
