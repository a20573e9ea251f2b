"""What plugins contribute to Relais and the payloads its hooks carry.

A *component* is the unit HQ governs and a tenant configures: one channel type, one
connector type or one rule overlay, with a unique name and its own msgspec configuration
schema. A plugin (a module or object registered with the manager) contributes components
through the `relais_*_types` hooks and may implement the reaction hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from uuid import UUID

import msgspec

if TYPE_CHECKING:
    from plugins.builtin.channels.base import ChannelSender
    from plugins.connectors import Connector

PluginKind = Literal["channel", "connector", "rule"]


class NoConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The schema of a component that takes no configuration."""


@dataclass(frozen=True)
class ChannelType:
    """An outbound channel: a `ChannelSender` subclass speaking one provider protocol.

    `channel` is the family the sender delivers on (`email`, `sms`, `whatsapp`, `push`,
    `webhook`...); several senders may share one family (Twilio and a generic SMS gateway).
    The tenant's configuration is validated against `sender.Config`; the fields named in
    `sender.secret_fields` are encrypted at rest and never returned by the API.
    """

    sender: type[ChannelSender]
    channel: str
    description: str = ""
    kind: ClassVar[PluginKind] = "channel"

    @property
    def name(self) -> str:
        return self.sender.name

    @property
    def config(self) -> type[msgspec.Struct]:
        return self.sender.Config

    @property
    def secret_fields(self) -> frozenset[str]:
        return self.sender.secret_fields


@dataclass(frozen=True)
class ConnectorType:
    """A data source. `connector` implements reading (see `plugins.connectors`); its
    `PluginConfig` holds tenant-wide settings (HQ may default or lock them), its `Config` the
    settings of one connector instance (a tenant may run several, e.g. ticketing and
    loyalty exports), including the field mapping to the core model."""

    connector: Connector

    kind: ClassVar[PluginKind] = "connector"

    @property
    def name(self) -> str:
        return self.connector.name

    @property
    def description(self) -> str:
        return self.connector.description

    @property
    def config(self) -> type[msgspec.Struct]:
        return self.connector.PluginConfig

    @property
    def secret_fields(self) -> frozenset[str]:
        return self.connector.plugin_secret_fields


@dataclass(frozen=True)
class RuleType:
    """A local rule overlay: declares a name and configuration schema; the plugin decides in
    its `relais_check_eligibility` implementation, which receives the validated `config` of
    every rule the tenant enabled."""

    name: str
    config: type[msgspec.Struct] = NoConfig
    description: str = ""
    secret_fields: frozenset[str] = field(default_factory=frozenset)
    kind: ClassVar[PluginKind] = "rule"


Component = ChannelType | ConnectorType | RuleType


# -- eligibility -----------------------------------------------------------------------

class EligibilityCandidate(msgspec.Struct, frozen=True, kw_only=True):
    """One message about to be sent to one customer."""

    message_id: str
    tenant_id: str
    customer_id: UUID
    channel: str
    # marketing, traffic_info, loyalty, service, transactional
    category: str
    scheduled_at: datetime
    timezone: str
    source: str = ""  # campaign or journey step that produced the message
    tags: tuple[str, ...] = ()
    # Profile fields the rule may need (stage, postal_code, attributes...).
    profile: dict[str, Any] = msgspec.field(default_factory=dict)


class EligibilityVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """A rule's objection: `veto` drops the message, `delay` postpones it to `until`.
    `reason` is recorded in the contact history: a message is never silently dropped."""

    message_id: str
    action: Literal["veto", "delay"]
    reason: str
    until: datetime | None = None
    rule: str = ""


# -- domain events ---------------------------------------------------------------------

class IngestedEvent(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    customer_id: UUID
    type: str
    occurred_at: datetime
    source: str
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


class CustomerMerge(msgspec.Struct, frozen=True, kw_only=True):
    survivor_id: UUID
    merged_id: UUID
    reason: dict[str, Any] = msgspec.field(default_factory=dict)


class MessageStatusChange(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    customer_id: UUID
    channel: str
    status: str
    previous_status: str | None = None
    at: datetime | None = None
    reason: str | None = None


class StageChange(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: UUID
    stage: str | None
    previous_stage: str | None = None
    at: datetime | None = None


__all__ = [
    "ChannelType",
    "Component",
    "ConnectorType",
    "CustomerMerge",
    "EligibilityCandidate",
    "EligibilityVerdict",
    "IngestedEvent",
    "MessageStatusChange",
    "NoConfig",
    "PluginKind",
    "RuleType",
    "StageChange",
]
