"""relais-example-plugin: what a third-party Relais plugin looks like.

The module is the plugin object: Relais registers it from the `relais.plugins` entry point
and calls the functions marked `@hookimpl` below.
"""

from __future__ import annotations

from collections import Counter

from plugins import ChannelType, ConnectorType, RuleType, hookimpl
from relais_example_plugin.chat import ChatWebhookSender
from relais_example_plugin.fixed_width import FixedWidthImport
from relais_example_plugin.sunday import SUNDAY_REST, check_sunday_rest

__version__ = "0.2.0"

# Observed event types, per tenant (a real plugin would export metrics instead).
EVENTS_SEEN: Counter[tuple[str, str]] = Counter()


@hookimpl
def relais_channel_types() -> list[ChannelType]:
    return [ChannelType(sender=ChatWebhookSender, channel="chat",
                        description="Team chat incoming webhook (Mattermost, Slack)")]


@hookimpl
def relais_connector_types() -> list[ConnectorType]:
    return [ConnectorType(FixedWidthImport())]


@hookimpl
def relais_rule_types() -> list[RuleType]:
    return [SUNDAY_REST]


@hookimpl
def relais_check_eligibility(candidates, rules):
    config = rules.get(SUNDAY_REST.name)
    return check_sunday_rest(candidates, config) if config is not None else []


@hookimpl
def relais_event_ingested(tenant_id, events):
    for event in events:
        EVENTS_SEEN[(tenant_id, event.type)] += 1
