"""The typed facade over pluggy: the only code that talks to the hooks.

`load_plugins(...)` builds a `PluginManager` from explicit inputs (built-ins, entry points of
the `relais.plugins` group, extra objects) when the API or a worker starts; nothing is
created at import time. Built-in plugins go through exactly the same registration as
third-party ones, and are registered first so that an installed package cannot take over a
built-in component's name.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import pluggy

from core.errors import NotFound
from plugins import hookspecs
from plugins.types import (
    ChannelType,
    Component,
    ConnectorType,
    CustomerMerge,
    EligibilityCandidate,
    EligibilityVerdict,
    IngestedEvent,
    MessageStatusChange,
    PluginKind,
    RuleType,
    StageChange,
)

log = logging.getLogger("relais.plugins")
ENTRY_POINT_GROUP = "relais.plugins"
Source = Literal["builtin", "entry_point", "explicit"]


class PluginInfo(msgspec.Struct, kw_only=True):
    """One installed component, as `relais plugins list` and `GET /v1/hq/plugins` show it."""

    name: str
    kind: PluginKind
    version: str
    description: str
    package: str
    builtin: bool
    config_schema: dict[str, Any]
    secret_fields: list[str]
    channel: str | None = None
    mode: str | None = None
    instance_schema: dict[str, Any] | None = None
    instance_secret_fields: list[str] | None = None


@dataclass
class Registration:
    """A registered plugin object (module or instance) and what it contributed."""

    name: str
    version: str
    source: Source
    components: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    active: bool = False


@dataclass(frozen=True)
class Registered:
    component: Component
    registration: Registration


@dataclass(frozen=True)
class Audience:
    """Who implements a per-tenant hook: `observers` (plugins contributing no component)
    hear every tenant, the others only tenants that enabled one of their `components`.
    Falsy when nobody implements the hook, so a caller can skip building its payload."""

    observers: bool = False
    components: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.observers or bool(self.components)

    def reaches(self, enabled: Collection[str]) -> bool:
        """Whether a tenant with these components enabled has any listener."""
        return self.observers or not self.components.isdisjoint(enabled)


def config_schema(config: type[msgspec.Struct], secret_fields: Collection[str]) -> dict:
    """JSON Schema of a configuration, secrets marked `writeOnly` (they are never read
    back)."""
    try:
        schema = msgspec.json.schema(config)
    except (TypeError, ValueError) as exc:  # an exotic type msgspec cannot describe
        return {"description": f"schema unavailable: {exc}"}
    definition = schema.get("$defs", {}).get(config.__name__)
    if definition is not None:
        for name in secret_fields:
            if name in definition.get("properties", {}):
                definition["properties"][name]["writeOnly"] = True
    return schema


class PluginManager:
    def __init__(self, pm: pluggy.PluginManager, registrations: list[Registration]) -> None:
        self._pm = pm
        # Every registration attempt, failed ones included: `plugins list` shows why.
        self.registrations = registrations
        self._live = {r.name: r for r in registrations if r.active}
        self._components: dict[str, Registered] = {}
        for hook in hookspecs.CONTRIBUTION_HOOKS:
            for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # register order
                registration = self._live[impl.plugin_name]
                try:
                    contributed = list(impl.function() or ())
                except Exception as exc:
                    log.exception("plugin hook failed", extra={"plugin": registration.name,
                                                               "hook": hook})
                    registration.errors.append(f"{hook}: {type(exc).__name__}: {exc}")
                    continue
                for component in contributed:
                    self._add(component, registration)
        # Registrations are final once the manager exists: who listens is known now.
        self._audiences = {hook: self._audience_of(hook) for hook in hookspecs.REACTION_HOOKS}

    def _add(self, component: Component, registration: Registration) -> None:
        if not isinstance(component, ChannelType | ConnectorType | RuleType):
            registration.errors.append(f"not a component: {component!r}")
            return
        existing = self._components.get(component.name)
        if existing is not None:
            registration.errors.append(
                f"{component.kind} {component.name!r} ignored: the name is taken by "
                f"{existing.registration.name}")
            return
        self._components[component.name] = Registered(component, registration)
        registration.components.append(component.name)

    # -- contributions -----------------------------------------------------------------

    def names(self, kind: PluginKind | None = None) -> list[str]:
        return sorted(n for n, r in self._components.items()
                      if kind is None or r.component.kind == kind)

    def get(self, name: str) -> Registered:
        registered = self._components.get(name)
        if registered is None:
            raise NotFound(f"plugin {name!r} is not installed")
        return registered

    def component(self, name: str) -> Component:
        return self.get(name).component

    def channel(self, name: str) -> ChannelType:
        return self._typed(name, ChannelType)

    def connector(self, name: str) -> ConnectorType:
        return self._typed(name, ConnectorType)

    def rule(self, name: str) -> RuleType:
        return self._typed(name, RuleType)

    def _typed(self, name: str, kind: type) -> Any:
        component = self.component(name)
        if not isinstance(component, kind):
            raise NotFound(f"plugin {name!r} is not a {kind.kind}")
        return component

    def info(self, name: str) -> PluginInfo:
        component, registration = self.get(name).component, self.get(name).registration
        info = PluginInfo(
            name=component.name, kind=component.kind, version=registration.version,
            description=component.description, package=registration.name,
            builtin=registration.source == "builtin",
            config_schema=config_schema(component.config, component.secret_fields),
            secret_fields=sorted(component.secret_fields))
        if isinstance(component, ChannelType):
            info.channel = component.channel
        elif isinstance(component, ConnectorType):
            connector = component.connector
            info.mode = connector.mode
            info.instance_schema = config_schema(connector.Config, connector.secret_fields)
            info.instance_secret_fields = sorted(connector.secret_fields)
        return info

    def infos(self, kind: PluginKind | None = None) -> list[PluginInfo]:
        return [self.info(name) for name in self.names(kind)]

    # -- per-tenant hooks --------------------------------------------------------------

    def _audience_of(self, hook: str) -> Audience:
        observers, components = False, set()
        for impl in getattr(self._pm.hook, hook).get_hookimpls():
            registration = self._live[impl.plugin_name]
            components.update(registration.components)
            observers = observers or not registration.components
        return Audience(observers, frozenset(components))

    def audience(self, hook: str) -> Audience:
        """Who implements the reaction `hook` (one of `hookspecs.REACTION_HOOKS`): callers
        check it before reading a tenant's enabled plugins or building a payload."""
        return self._audiences[hook]

    def _impls_for(self, hook: str, enabled: Collection[str]) -> list[tuple[Registration, Any]]:
        chosen = []
        for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls()):
            registration = self._live[impl.plugin_name]
            if not registration.components or set(registration.components) & set(enabled):
                chosen.append((registration, impl))
        return chosen

    async def check_eligibility(
        self, candidates: Sequence[EligibilityCandidate], rules: Mapping[str, msgspec.Struct]
    ) -> dict[str, EligibilityVerdict]:
        """The most restrictive verdict per message id, from the rules the tenant enabled
        (`rules`: name → validated config). Messages nobody objects to are absent."""
        if not candidates or not rules:
            return {}
        wanted = {c.message_id for c in candidates}
        verdicts: dict[str, EligibilityVerdict] = {}
        for registration, impl in self._impls_for("relais_check_eligibility", rules):
            own = {n: rules[n] for n in registration.components if n in rules}
            if not own:
                continue  # an observer without rules has no say in eligibility
            try:
                result = await _resolve(_call(impl, candidates=candidates, rules=own))
                found = [v for v in (result or ()) if isinstance(v, EligibilityVerdict)]
            except Exception as exc:
                log.exception("eligibility rule failed", extra={"plugin": registration.name})
                reason = f"rule_error: {registration.name}: {type(exc).__name__}"
                found = [EligibilityVerdict(message_id=m, action="veto", reason=reason,
                                            rule=",".join(sorted(own))) for m in wanted]
            for verdict in found:
                if verdict.message_id in wanted:
                    verdicts[verdict.message_id] = _stricter(
                        verdicts.get(verdict.message_id), verdict)
        return verdicts

    async def event_ingested(self, tenant_id: str, events: Sequence[IngestedEvent],
                             enabled: Collection[str]) -> None:
        await self._react("relais_event_ingested", enabled, events, tenant_id=tenant_id,
                          events=events)

    async def customers_merged(self, tenant_id: str, merges: Sequence[CustomerMerge],
                               enabled: Collection[str]) -> None:
        await self._react("relais_customers_merged", enabled, merges, tenant_id=tenant_id,
                          merges=merges)

    async def message_status_changed(self, tenant_id: str,
                                     changes: Sequence[MessageStatusChange],
                                     enabled: Collection[str]) -> None:
        await self._react("relais_message_status_changed", enabled, changes,
                          tenant_id=tenant_id, changes=changes)

    async def stage_changed(self, tenant_id: str, changes: Sequence[StageChange],
                            enabled: Collection[str]) -> None:
        await self._react("relais_stage_changed", enabled, changes, tenant_id=tenant_id,
                          changes=changes)

    async def _react(self, hook: str, enabled: Collection[str], batch: Sequence[Any],
                     **kwargs: Any) -> None:
        """Each implementation runs on its own: a failing plugin is logged and never keeps
        the others (or the caller) from going on."""
        if not batch:
            return
        for registration, impl in self._impls_for(hook, enabled):
            try:
                await _resolve(_call(impl, **kwargs))
            except Exception:
                log.exception("plugin reaction failed",
                              extra={"plugin": registration.name, "hook": hook})


def _call(impl: Any, **kwargs: Any) -> Any:
    # pluggy lets an implementation accept a subset of the spec's arguments.
    return impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _stricter(current: EligibilityVerdict | None, new: EligibilityVerdict) -> EligibilityVerdict:
    if current is None or current.action == "veto":
        return current or new
    if new.action == "veto":
        return new
    if current.until is None or (new.until is not None and new.until > current.until):
        return new
    return current


# -- construction ----------------------------------------------------------------------

def _relais_version() -> str:
    try:
        return importlib.metadata.version("relais")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def _register(pm: pluggy.PluginManager, obj: object, name: str, version: str,
              source: Source, registrations: list[Registration]) -> None:
    registration = Registration(name=name, version=version, source=source)
    registrations.append(registration)
    try:
        pm.register(obj, name=name)
        pm.check_pending()  # a misspelt hook name is an error, not a silent no-op
    except (ValueError, pluggy.PluginValidationError) as exc:
        if pm.get_plugin(name) is obj:
            pm.unregister(obj)
        registration.errors.append(f"{type(exc).__name__}: {exc}")
        log.error("plugin rejected", extra={"plugin": name, "error": str(exc)})
        return
    registration.active = True


def load_plugins(
    *,
    builtins: bool = True,
    entry_points: bool = True,
    extra: Iterable[tuple[str, object]] = (),
    disabled: Collection[str] = (),
) -> PluginManager:
    """Build the manager. `disabled` names registrations (entry point names) to skip."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registrations: list[Registration] = []
    if builtins:
        from plugins.builtin import BUILTIN_PLUGINS

        version = _relais_version()
        for name, obj in BUILTIN_PLUGINS:
            _register(pm, obj, name, version, "builtin", registrations)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled:
                continue
            version = ep.dist.version if ep.dist is not None else "0.0.0"
            try:
                obj = ep.load()
            except Exception as exc:
                log.exception("plugin failed to load", extra={"plugin": ep.name})
                registrations.append(Registration(
                    name=ep.name, version=version, source="entry_point",
                    errors=[f"load failed: {type(exc).__name__}: {exc}"]))
                continue
            _register(pm, obj, ep.name, version, "entry_point", registrations)
    for name, obj in extra:
        _register(pm, obj, name, _relais_version(), "explicit", registrations)
    return PluginManager(pm, registrations)


__all__ = ["ENTRY_POINT_GROUP", "Audience", "PluginInfo", "PluginManager", "Registration",
           "load_plugins"]
