"""The contract of a data-source connector, for built-in and third-party plugins alike.

A connector only *reads* its source and yields flat records (`SourceRecord`: a dict of
source columns, or the reason it could not be parsed, with its line number). Everything
after that is the platform's job and the same for every connector: the declarative field
mapping to the core model, ingestion through the customer-data services, counters, the
rejects report, checkpoints and resumption (`core.connectors`).

Three modes:
- `file`: reads an uploaded file or one from the tenant's drop directory, in batches, each
  with a checkpoint (e.g. a byte offset) from which reading can resume after a crash;
- `push`: the source calls Relais (inbound webhook); the connector verifies the signature
  and parses the body;
- `pull`: Relais calls the source on a schedule, page by page, each page with a checkpoint
  (cursor, updated-since) saved once the page is ingested.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import httpx
import msgspec

from plugins.types import NoConfig

ConnectorMode = Literal["file", "push", "pull"]


class SourceRecord(NamedTuple):
    """One record of the source. `line` locates it for humans (file line, page item
    number); `data` is None when the record could not be parsed, and `error` says why."""

    line: int
    data: Mapping[str, Any] | None
    error: str | None = None


class SourceBatch(NamedTuple):
    """Records read together. `checkpoint` (JSON-serialisable) is where reading resumes
    once these records are ingested; `progress` is the share of the source read (0 to 1) when
    the connector can tell."""

    records: list[SourceRecord]
    checkpoint: dict[str, Any] | None = None
    progress: float | None = None


class Connector(abc.ABC):
    """Base of every connector. Subclass `FileConnector`, `PushConnector` or
    `PullConnector`.

    `Config` is the schema of one connector instance and must have a `mapping` field of
    type `core.connectors.mapping.Mapping`; `PluginConfig` holds tenant-wide settings of the
    connector type (HQ may give defaults and lock them). Fields listed in `secret_fields` /
    `plugin_secret_fields` are encrypted at rest and write-only in the API.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    mode: ClassVar[ConnectorMode]
    Config: ClassVar[type[msgspec.Struct]]
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    PluginConfig: ClassVar[type[msgspec.Struct]] = NoConfig
    plugin_secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class FileConnector(Connector):
    mode: ClassVar[ConnectorMode] = "file"
    # File name suffixes this connector reads, e.g. (".csv", ".jsonl").
    suffixes: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def read(self, config: Any, path: Path, checkpoint: dict[str, Any] | None,
             batch_size: int) -> Iterator[SourceBatch]:
        """Yield batches of at most `batch_size` records from `path`, starting after
        `checkpoint` (None: from the start). Must run in memory independent of file size.
        A bad record is yielded with its error: it must never stop the read."""


class PushConnector(Connector):
    mode: ClassVar[ConnectorMode] = "push"

    @abc.abstractmethod
    def verify(self, config: Any, body: bytes, headers: Mapping[str, str],
               now: float) -> bool:
        """Whether the request really comes from the source (e.g. an HMAC signature over
        the body with a shared secret from `config`). Compare in constant time."""

    @abc.abstractmethod
    def parse(self, config: Any, body: bytes,
              headers: Mapping[str, str]) -> list[SourceRecord]:
        """The records of one delivery (a delivery may carry several)."""


class PullConnector(Connector):
    mode: ClassVar[ConnectorMode] = "pull"

    @abc.abstractmethod
    def pages(self, config: Any, plugin_config: Any, checkpoint: dict[str, Any] | None,
              client: httpx.AsyncClient) -> AsyncIterator[SourceBatch]:
        """Yield one batch per page fetched after `checkpoint`. The platform ingests a page
        and saves its checkpoint before asking for the next one, so a crash resumes from the
        last ingested page. The final batch's checkpoint is the start of the next sync."""


__all__ = [
    "Connector",
    "ConnectorMode",
    "FileConnector",
    "PullConnector",
    "PushConnector",
    "SourceBatch",
    "SourceRecord",
]
