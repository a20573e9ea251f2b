"""The plugin manager: registration, contributions, per-tenant hooks, documentation."""

from __future__ import annotations

import inspect
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from plugins import hookspecs
from plugins.manager import load_plugins
from plugins.types import (
    EligibilityCandidate,
    EligibilityVerdict,
    IngestedEvent,
    RuleType,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_every_hookspec_has_a_docstring_and_is_documented_in_the_guide():
    guide = DOCS.read_text()
    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("relais_")]
    assert set(specs) == set(hookspecs.ALL_HOOKS)
    for name in specs:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"{name} has no docstring"
        # Each hook has its own section in the guide, not just a passing mention.
        assert f"### `{name}`" in guide, f"docs/plugins.md does not document {name}"


def test_builtins_are_registered_like_any_plugin():
    manager = load_plugins(entry_points=False)
    sources = {r.name: r.source for r in manager.registrations}
    assert sources == {"relais.channels": "builtin", "relais.connectors": "builtin"}
    assert {"email", "sms_twilio", "webhook"} <= set(manager.names("channel"))
    assert set(manager.names("connector")) == {"file_import", "webhook_source", "rest_pull"}
    email = manager.info("email")
    assert email.kind == "channel" and email.channel == "email"
    assert email.secret_fields == ["password"]
    schema = email.config_schema["$defs"]["EmailConfig"]
    assert schema["properties"]["password"]["writeOnly"] is True
    assert "host" in schema["required"]
    pull = manager.info("rest_pull")
    assert pull.mode == "pull" and pull.instance_secret_fields == ["headers", "token"]
    assert "mapping" in pull.instance_schema["$defs"]["RestPullConfig"]["properties"]


class QuietConfig(msgspec.Struct, forbid_unknown_fields=True):
    category: str = "marketing"
    hours: int = 2


class Quiet:
    """A rule plugin: delays one category, vetoes a blocked customer."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookspecs.hookimpl
    def relais_rule_types(self):
        return [RuleType(name="test_quiet", config=QuietConfig),
                RuleType(name="test_block", config=QuietConfig)]

    @hookspecs.hookimpl
    async def relais_check_eligibility(self, candidates, rules):
        verdicts = []
        for c in candidates:
            if "test_block" in rules and "blocked" in c.tags:
                verdicts.append(EligibilityVerdict(message_id=c.message_id, action="veto",
                                                   reason="blocked locally"))
            config = rules.get("test_quiet")
            if config and c.category == config.category:
                verdicts.append(EligibilityVerdict(
                    message_id=c.message_id, action="delay", reason="quiet",
                    until=c.scheduled_at + timedelta(hours=config.hours)))
        return verdicts

    @hookspecs.hookimpl
    def relais_event_ingested(self, events):  # a subset of the spec's arguments
        self.seen.extend(e.type for e in events)


class Broken:
    @hookspecs.hookimpl
    def relais_rule_types(self):
        return [RuleType(name="test_broken")]

    @hookspecs.hookimpl
    def relais_check_eligibility(self, candidates, rules):
        raise RuntimeError("bug in a local rule")

    @hookspecs.hookimpl
    def relais_event_ingested(self, tenant_id, events):
        raise RuntimeError("bug in an observer")


class Observer:
    """Contributes nothing: an operator-installed observer, sees every tenant."""

    def __init__(self) -> None:
        self.tenants: list[str] = []

    @hookspecs.hookimpl
    def relais_event_ingested(self, tenant_id, events):
        self.tenants.append(tenant_id)


def _candidate(category: str = "marketing", tags: tuple[str, ...] = ()) -> EligibilityCandidate:
    return EligibilityCandidate(
        message_id=uuid.uuid4().hex, tenant_id="t", customer_id=uuid.uuid4(),
        channel="email", category=category, scheduled_at=NOW, timezone="Europe/Paris",
        tags=tags)


async def test_eligibility_runs_only_enabled_rules_and_the_strictest_verdict_wins():
    quiet, broken = Quiet(), Broken()
    manager = load_plugins(builtins=False, entry_points=False,
                           extra=[("quiet", quiet), ("broken", broken)])
    marketing, blocked, service = (_candidate(), _candidate(tags=("blocked",)),
                                   _candidate("service"))
    batch = [marketing, blocked, service]
    # Nothing enabled: no verdicts, and the broken rule is never called.
    assert await manager.check_eligibility(batch, {}) == {}
    verdicts = await manager.check_eligibility(batch, {"test_quiet": QuietConfig(hours=3)})
    assert verdicts[marketing.message_id].action == "delay"
    assert verdicts[marketing.message_id].until == NOW + timedelta(hours=3)
    assert service.message_id not in verdicts
    both = await manager.check_eligibility(
        batch, {"test_quiet": QuietConfig(), "test_block": QuietConfig()})
    assert both[blocked.message_id].action == "veto"  # veto beats delay
    assert both[blocked.message_id].reason == "blocked locally"


async def test_a_failing_rule_vetoes_with_a_reason_instead_of_letting_messages_through():
    manager = load_plugins(builtins=False, entry_points=False, extra=[("broken", Broken())])
    candidate = _candidate()
    verdicts = await manager.check_eligibility([candidate], {"test_broken": msgspec.Struct()})
    assert verdicts[candidate.message_id].action == "veto"
    assert verdicts[candidate.message_id].reason.startswith("rule_error: broken")


async def test_reactions_reach_enabled_plugins_and_observers_and_survive_failures(caplog):
    quiet, observer = Quiet(), Observer()
    manager = load_plugins(builtins=False, entry_points=False,
                           extra=[("broken", Broken()), ("quiet", quiet),
                                  ("observer", observer)])
    event = IngestedEvent(message_id="m1", customer_id=uuid.uuid4(), type="app_opened",
                          occurred_at=NOW, source="api")
    with caplog.at_level(logging.ERROR, logger="relais.plugins"):
        await manager.event_ingested("lyon", [event], enabled=["test_quiet", "test_broken"])
    assert quiet.seen == ["app_opened"]
    assert observer.tenants == ["lyon"]
    assert "plugin reaction failed" in caplog.text
    # A tenant that enabled none of quiet's rules: quiet hears nothing, the observer does.
    await manager.event_ingested("lille", [event], enabled=[])
    assert quiet.seen == ["app_opened"] and observer.tenants == ["lyon", "lille"]


def test_bad_plugins_are_reported_not_fatal():
    class Misspelt:
        @hookspecs.hookimpl
        def relais_chanel_types(self):
            return []

    class Thief:
        @hookspecs.hookimpl
        def relais_rule_types(self):
            return [RuleType(name="email"), "not a component"]

    manager = load_plugins(entry_points=False,
                           extra=[("misspelt", Misspelt()), ("thief", Thief())])
    by_name = {r.name: r for r in manager.registrations}
    assert not by_name["misspelt"].active
    assert "relais_chanel_types" in by_name["misspelt"].errors[0]
    assert any("taken by relais.channels" in e for e in by_name["thief"].errors)
    assert manager.info("email").kind == "channel"  # a built-in name cannot be taken over


def test_no_plugin_manager_exists_at_import_time():
    import plugins.manager as module

    assert not [v for v in vars(module).values() if isinstance(v, module.PluginManager)]
    with pytest.raises(Exception, match="not installed"):
        load_plugins(builtins=False, entry_points=False).get("email")
