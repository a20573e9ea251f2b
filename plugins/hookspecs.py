"""The hooks a Relais plugin may implement.

Mark implementations with `plugins.hookimpl` and name them exactly like the specs below.
Every hook is called through the typed facade in `plugins.manager`; nothing else in the
code base touches `pm.hook`. Each hook here is documented in docs/plugins.md (a test
checks it).

Two families:
- *contribution* hooks (`relais_channel_types`, `relais_connector_types`,
  `relais_rule_types`) are called once when the manager is built and declare components
  (the units HQ allows and tenants configure);
- *per-tenant* hooks (`relais_check_eligibility` and the reactions to domain events) are
  called with one tenant's data, and only on plugins that tenant enabled: a tenant's data
  never reaches code it did not switch on. A plugin that contributes no component at all is
  an operator-installed observer and receives the reactions of every tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, Sequence

import msgspec
import pluggy

from plugins.types import (
    ChannelType,
    ConnectorType,
    CustomerMerge,
    EligibilityCandidate,
    EligibilityVerdict,
    IngestedEvent,
    MessageStatusChange,
    RuleType,
    StageChange,
)

PROJECT = "relais"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- contributions ---------------------------------------------------------------------

@hookspec
def relais_channel_types() -> Sequence[ChannelType]:
    """Outbound channel types this plugin provides.

    Each `ChannelType` wraps a `ChannelSender` subclass (see
    `plugins.builtin.channels.base`): its `name` is the plugin name tenants enable, its
    `Config` the schema their configuration is validated against and `secret_fields` the
    fields stored encrypted and never returned.
    """


@hookspec
def relais_connector_types() -> Sequence[ConnectorType]:
    """Data-source connector types this plugin provides.

    Each `ConnectorType` wraps a `plugins.connectors.Connector` (file, push or pull mode).
    Reading is the connector's job; mapping, ingestion, counters, rejects and checkpoints
    are the platform's.
    """


@hookspec
def relais_rule_types() -> Sequence[RuleType]:
    """Local rule overlays this plugin provides (name, configuration schema).

    A tenant enables a rule like any plugin; the decision itself is made by the plugin's
    `relais_check_eligibility` implementation.
    """


# -- per-tenant ------------------------------------------------------------------------

@hookspec
def relais_check_eligibility(
    candidates: Sequence[EligibilityCandidate],
    rules: Mapping[str, msgspec.Struct],
) -> Iterable[EligibilityVerdict] | Awaitable[Iterable[EligibilityVerdict]] | None:
    """Veto or delay messages about to be sent.

    `candidates` are messages of one tenant (a batch: a campaign plans thousands at once);
    `rules` maps the names of the rule overlays of this plugin that the tenant enabled to
    their validated configuration. Return one `EligibilityVerdict` per message you object
    to (`veto` with a reason, or `delay` until a time), nothing for the others. The most
    restrictive verdict wins across plugins: any veto, else the latest delay. A rule that
    raises vetoes the whole batch (reason `rule_error`): better not to contact than to annoy.
    May be a coroutine function.
    """


@hookspec
def relais_event_ingested(
    tenant_id: str, events: Sequence[IngestedEvent]
) -> Awaitable[None] | None:
    """Events were accepted into a tenant's event store (one call per ingested batch).

    Reactions must not write back into the ingestion path synchronously (data flows one
    way); enqueue work instead. May be a coroutine function. An exception is logged and
    never fails the ingestion.
    """


@hookspec
def relais_customers_merged(
    tenant_id: str, merges: Sequence[CustomerMerge]
) -> Awaitable[None] | None:
    """Profiles of a tenant were merged (`merged_id` now resolves to `survivor_id`).

    Useful to re-key data a plugin keeps outside Relais. May be a coroutine function.
    """


@hookspec
def relais_message_status_changed(
    tenant_id: str, changes: Sequence[MessageStatusChange]
) -> Awaitable[None] | None:
    """Messages of a tenant changed status (queued, sent, delivered, bounced, opened,
    clicked, failed, capped...). May be a coroutine function."""


@hookspec
def relais_stage_changed(
    tenant_id: str, changes: Sequence[StageChange]
) -> Awaitable[None] | None:
    """Customers of a tenant moved between lifecycle stages (prospect, customer, loyal,
    fragile, inactive...). May be a coroutine function."""


CONTRIBUTION_HOOKS = ("relais_channel_types", "relais_connector_types", "relais_rule_types")
REACTION_HOOKS = ("relais_event_ingested", "relais_customers_merged",
                  "relais_message_status_changed", "relais_stage_changed")
ALL_HOOKS = (*CONTRIBUTION_HOOKS, "relais_check_eligibility", *REACTION_HOOKS)
