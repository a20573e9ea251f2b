"""From source records to the core model, through the customer-data ingestion services.

Connectors never write customer data themselves: a batch of mapped rows becomes one
`identify` call (identifiers + traits) and one `ingest_events` call, the same set-based
entry points the API uses, so identity resolution, survivorship, the tracking plan and
idempotency behave identically whatever the source. A row is accepted when every part of
it is; otherwise it is rejected with the first reason and field, against its line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.connectors.mapping import Mapper, Mapping, RowError
from core.connectors.schemas import Reject
from core.consents.schemas import ConsentChange
from core.consents.service import set_consents_many
from core.db import Database
from core.events import service as events
from core.events.reactions import Reactions
from core.events.schemas import EventIn, Identifiers, IdentifyIn, ItemResult
from core.model.service import DataConfig
from plugins.connectors import SourceRecord
from plugins.manager import PluginManager
from tenants.context import TenantContext


def build_mapper(mapping: Mapping, config: DataConfig, ctx: TenantContext,
                 source: str) -> Mapper:
    return Mapper(
        mapping,
        field_types={name: f.type for name, f in config.fields.items()},
        event_properties={name: {p: spec.type for p, spec in props.items()}
                          for name, props in config.event_types.items()},
        timezone=ctx.timezone, source=source)


@dataclass
class Outcome:
    read: int = 0
    accepted: int = 0
    rejects: list[Reject] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejects)


_encode = msgspec.json.Encoder(order="sorted").encode


def _identifiers(values: dict[str, Any]) -> Identifiers:
    # Built directly (no msgspec.convert per row): the mapper only produces strings.
    return Identifiers(**values)


def _rejected(result: ItemResult, prefix: str) -> tuple[str, str | None]:
    # The services name fields `items[i].x`: the row is known by its line, keep `x`.
    where = result.field or ""
    if where.startswith("items["):
        where = where.partition("]")[2].lstrip(".")
    return result.reason or result.status, f"{prefix}{where}" if where else prefix or None


@dataclass
class MappedBatch:
    """A batch of source records mapped to the core model (no database work yet)."""

    outcome: Outcome
    rows: list[tuple[int, Any]]  # (line, Mapped)
    identify_items: list[IdentifyIn]
    identify_lines: list[tuple[int, int]]  # (line, index in identify_items)
    prepared: events.PreparedIdentify | None = None


@dataclass
class Identified:
    """A batch after its profiles were identified: what storing its events needs."""

    outcome: Outcome
    rows: list[tuple[int, Any]]  # (line, Mapped)
    failed: dict[int, Reject]
    customer_of: dict[int, Any]  # line -> customer_id


# A long stretch of Python holds up the other batches' statements (a file import keeps
# several batches in flight): mapping yields to the event loop every so many rows.
_YIELD_EVERY = 250


@dataclass
class Ingester:
    """Ingests batches for one connector run. `enabled` names the tenant's enabled
    plugins (read once per run), for the reactions the ingestion services fire
    (`relais_event_ingested`, `relais_customers_merged`).

    A batch goes through three steps: `map_batch` (source records to the core model),
    `identify_batch` (upsert the profiles), `store_batch` (events, the plugins' reaction,
    consents); `ingest` runs them in turn. A file import keeps batches at different steps
    in flight, so Python maps and plans while PostgreSQL writes."""

    db: Database
    ctx: TenantContext
    mapper: Mapper
    source: str
    plugins: PluginManager | None = None
    enabled: Sequence[str] = ()
    # The tenant's data model as last seen: identify items are prepared against it while
    # mapping (the identify service checks it is still current).
    config: DataConfig | None = None

    @property
    def reactions(self) -> Reactions | None:
        return None if self.plugins is None else Reactions(self.plugins, enabled=self.enabled)

    async def ingest(self, records: Sequence[SourceRecord]) -> Outcome:
        return await self.store_batch(await self.identify_batch(
            await self.map_batch(records)))

    async def map_batch(self, records: Sequence[SourceRecord]) -> MappedBatch:
        outcome = Outcome(read=len(records))
        rows: list[tuple[int, Any]] = []  # (line, Mapped)
        for n, record in enumerate(records, start=1):
            if record.data is None:
                outcome.rejects.append(Reject(line=record.line, reason=record.error or
                                              "unreadable record"))
                continue
            try:
                rows.append((record.line, self.mapper.map(record.data)))
            except RowError as exc:
                outcome.rejects.append(Reject(line=record.line, reason=exc.reason,
                                              field=exc.field))
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        # Identity is resolved once per row: rows with traits (or nothing but identifiers)
        # go through identify, and their events then name the resolved customer_id.
        # Exports repeat a customer row after row (one line per purchase): the same
        # identifiers and traits are identified once per batch.
        identify_items: list[IdentifyIn] = []
        slot_of: dict[bytes, int] = {}
        identify_lines: list[tuple[int, int]] = []  # (line, index in identify_items)
        for line, mapped in rows:
            if mapped.traits or mapped.event is None:
                key = _encode([mapped.identifiers, mapped.traits])
                slot = slot_of.get(key)
                if slot is None:
                    slot = slot_of[key] = len(identify_items)
                    identify_items.append(IdentifyIn(
                        identifiers=_identifiers(mapped.identifiers), traits=mapped.traits))
                identify_lines.append((line, slot))
        prepared = None
        if self.config is not None and identify_items:
            prepared = await events.PreparedIdentify.build(self.ctx, self.config,
                                                           identify_items)
        return MappedBatch(outcome, rows, identify_items, identify_lines, prepared)

    async def identify_batch(self, batch: MappedBatch) -> Identified:
        outcome, rows, identify_items, identify_lines = (
            batch.outcome, batch.rows, batch.identify_items, batch.identify_lines)
        failed: dict[int, Reject] = {}
        customer_of: dict[int, Any] = {}
        if identify_items:
            results = await events.identify(self.db, self.ctx, identify_items,
                                            source=self.source, prepared=batch.prepared,
                                            reactions=self.reactions)
            if batch.prepared is not None:
                self.config = batch.prepared.config
            for line, slot in identify_lines:
                result = results[slot]
                if result.status == "rejected":
                    reason, where = _rejected(result, "")
                    failed[line] = Reject(line=line, reason=reason, field=where)
                elif result.customer_id is not None:
                    customer_of[line] = result.customer_id
        return Identified(outcome, rows, failed, customer_of)

    async def store_batch(self, batch: Identified) -> Outcome:
        outcome, rows, failed, customer_of = (batch.outcome, batch.rows, batch.failed,
                                              batch.customer_of)
        event_items, event_lines = [], []
        for line, mapped in rows:
            event = mapped.event
            if event is None or line in failed:
                continue
            if len(event.type) > 64:
                failed[line] = Reject(line=line, reason="event type longer than 64 characters",
                                      field="event.type")
                continue
            customer = customer_of.get(line)
            event_items.append(EventIn(
                message_id=event.message_id, type=event.type,
                identifiers=None if customer else _identifiers(mapped.identifiers),
                customer_id=customer, occurred_at=event.occurred_at,
                properties=event.properties))
            event_lines.append(line)
        if event_items:
            # Their customer_ids come from this batch's identify call.
            # The service tells the plugins about the events it stored (not replays).
            results = await events.ingest_events(self.db, self.ctx, event_items,
                                                 source=self.source, known_customers=True,
                                                 reactions=self.reactions)
            for line, result in zip(event_lines, results, strict=True):
                if result.status in ("rejected", "quarantined"):
                    reason, where = _rejected(result, "event.")
                    if result.status == "quarantined":
                        reason = f"quarantined by the tenant's tracking-plan policy: {reason}"
                    failed[line] = Reject(line=line, reason=reason, field=where)
                elif result.customer_id is not None:
                    customer_of.setdefault(line, result.customer_id)
        await self._consents(rows, customer_of, failed)
        outcome.rejects.extend(failed.values())
        outcome.rejects.sort(key=lambda r: r.line)
        outcome.accepted = len(rows) - len(failed)
        return outcome

    async def _consents(self, rows: list[tuple[int, Any]], customer_of: dict[int, Any],
                        failed: dict[int, Reject]) -> None:
        """Consents go through the consent service (history, proof, recency rule), every
        change of the batch in one call; a customer it refuses fails its lines alone."""
        changes: dict[Any, list[tuple[int, ConsentChange]]] = {}
        for line, mapped in rows:
            if not mapped.consents or line in failed or line not in customer_of:
                continue
            for consent in mapped.consents:
                change = ConsentChange(
                    channel=consent["channel"], purpose=consent["purpose"],
                    status=consent["status"], legal_basis=consent["legal_basis"],
                    source=self.source,
                    proof=consent["proof"] or f"{self.source} import, line {line}")
                changes.setdefault(customer_of[line], []).append((line, change))
        if not changes:
            return
        errors = await set_consents_many(self.db, self.ctx, {
            customer_id: [c for _, c in items] for customer_id, items in changes.items()})
        for customer_id, exc in errors.items():
            for line, _ in changes[customer_id]:
                failed.setdefault(line, Reject(line=line, reason=exc.detail,
                                               field="consents"))
