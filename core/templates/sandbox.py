"""The Liquid environment tenant-authored templates run in, and its resource limits.

- printing a nil value is an error (a blank where a first name should be is worse than not
  sending; `| default: "..."` is the explicit way out), as is an undefined variable;
- `safe` is removed, so customer data can't be printed unescaped into html;
- loops, output size, assigned data and render nesting are bounded, and so is every filter
  result, so a tenant template cannot hang or exhaust a worker. There is no wall-clock
  limit: jobs keep their own timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec
from liquid import CachingDictLoader, Environment, StrictDefaultUndefined, Undefined
from liquid.builtin.output import Output, OutputNode
from liquid.builtin.tags.echo_tag import EchoNode, EchoTag
from liquid.exceptions import LoopIterationLimitError, OutputStreamLimitError, UndefinedError
from liquid.stringify import to_liquid_string

# `safe` would let a template print customer data unescaped into html; layouts receive
# their content already marked safe, so nothing legitimate needs it.
_REMOVED_FILTERS: Final = frozenset({"safe"})


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


def sandboxed_environment(
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


# -- nil is an error -------------------------------------------------------------------


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


# -- bounded filters -------------------------------------------------------------------


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
