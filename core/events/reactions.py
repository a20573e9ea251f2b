"""The plugins' reactions to customer-data ingestion.

`relais_event_ingested` (events newly stored, never replays) and `relais_customers_merged`
(merges made) are fired by the ingestion services themselves (`core.events.service`), so
every producer gets them alike: the API routes, imports, connectors. Each service call
fires each hook at most once, with the whole batch, after the transactions that stored the
events and made the merges committed, and only towards plugins the tenant enabled (plus
operator-installed observers). Who listens is decided in the batch's transaction before
anything is collected: with no listener, ingestion does no extra work at all.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from core.db import Connection
from core.identity.resolve import Record
from core.plugin_config.secrets import SecretBox
from core.plugin_config.service import enabled_configs
from core.settings import Settings
from plugins.manager import PluginManager
from plugins.types import CustomerMerge, IngestedEvent
from tenants.context import TenantContext

EVENTS_HOOK = "relais_event_ingested"
MERGES_HOOK = "relais_customers_merged"


@dataclass(frozen=True)
class Listeners:
    """Who hears about one ingestion call, decided inside its first transaction."""

    plugins: PluginManager | None = None
    enabled: Collection[str] = ()
    events: bool = False
    merges: bool = False

    async def fire(self, ctx: TenantContext, source: str, stored: Sequence[Record],
                   merges: Sequence[CustomerMerge]) -> None:
        """After commit. Events first: a fast-path event may still name a profile that the
        same call's slow path merged away, and the merge that follows re-keys it."""
        if self.plugins is None:
            return
        if self.events and stored:
            await self.plugins.event_ingested(ctx.tenant_id, [IngestedEvent(
                message_id=r.message_id, customer_id=r.resolved, type=r.event_type,
                occurred_at=r.seen_at, source=source, properties=r.properties or {})
                for r in sorted(stored, key=_by_index)], self.enabled)  # type: ignore[arg-type]
        if self.merges and merges:
            await self.plugins.customers_merged(ctx.tenant_id, merges, self.enabled)


NOBODY = Listeners()


def _by_index(r: Record) -> int:
    return r.index  # the order of the items in the call


@dataclass(frozen=True)
class Reactions:
    """What an ingestion call needs to fire the reactions: the plugin manager, and the
    tenant's enabled plugins, either already known (`enabled`: a connector run reads them
    once) or read in the batch's transaction (`settings` gives the key that opens their
    configuration, which must still validate, as `enabled_configs` decides everywhere)."""

    plugins: PluginManager
    settings: Settings | None = None
    enabled: Collection[str] | None = None

    async def listeners(self, conn: Connection, ctx: TenantContext) -> Listeners:
        events, merges = self.plugins.audience(EVENTS_HOOK), self.plugins.audience(MERGES_HOOK)
        if not events and not merges:
            return NOBODY
        enabled: Collection[str] = ()
        if events.components or merges.components:  # observers alone need no lookup
            enabled = self.enabled if self.enabled is not None else await self._enabled(
                conn, ctx)
        if not events.reaches(enabled) and not merges.reaches(enabled):
            return NOBODY
        return Listeners(self.plugins, enabled, events=events.reaches(enabled),
                         merges=merges.reaches(enabled))

    async def _enabled(self, conn: Connection, ctx: TenantContext) -> list[str]:
        if self.settings is None or not self.settings.secret_key:
            # Plugin configuration is sealed with this key: without it none can be stored,
            # so no tenant has a plugin enabled.
            return []
        box = SecretBox.from_settings(self.settings)
        return list(await enabled_configs(conn, ctx, self.plugins, box))


async def listeners_of(reactions: Reactions | None, conn: Connection,
                       ctx: TenantContext) -> Listeners:
    return NOBODY if reactions is None else await reactions.listeners(conn, ctx)


__all__ = ["NOBODY", "Listeners", "Reactions", "listeners_of"]
