"""File import: CSV and JSON Lines exports (ticketing, loyalty, forms...).

Reads in constant memory whatever the file size: one row at a time, batches of
`batch_size` records, each batch with a checkpoint (byte offset and line number of the next
row) from which a restarted job resumes without re-reading what was ingested. A row that
cannot be parsed (bad encoding, wrong column count, invalid JSON) is yielded with its line
number and reason; it never stops the file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO, ClassVar, Literal

import msgspec

from core.connectors.mapping import Mapping
from plugins.connectors import FileConnector, SourceBatch, SourceRecord

csv.field_size_limit(16 * 1024 * 1024)


class FileImportConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mapping: Mapping
    # auto: from the file name (.csv, .tsv, .jsonl, .ndjson).
    format: Literal["auto", "csv", "jsonl"] = "auto"
    delimiter: Annotated[str, msgspec.Meta(min_length=1, max_length=1)] = ","
    quotechar: Annotated[str, msgspec.Meta(min_length=1, max_length=1)] = '"'
    # utf-8-sig also reads UTF-8 with a byte-order mark (Excel exports).
    encoding: str = "utf-8-sig"


class FileImportSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Tenant-wide settings (HQ may set defaults and lock them)."""

    max_file_mb: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 4096
    # Rejected rows beyond this are counted but not listed one by one.
    max_rejects_listed: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 10_000


class _Lines:
    """Decoded lines of a binary file, counting the bytes and lines consumed so the reader
    can checkpoint exactly after the last complete row."""

    def __init__(self, stream: BinaryIO, encoding: str, offset: int, line: int) -> None:
        self.stream, self.encoding = stream, encoding
        self.offset, self.line = offset, line
        self.bad_lines: list[int] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.stream.readline()
        if not raw:
            raise StopIteration
        self.offset += len(raw)
        self.line += 1
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            self.bad_lines.append(self.line)
            return raw.decode(self.encoding, errors="replace")


def _format(config: FileImportConfig, path: Path) -> str:
    if config.format != "auto":
        return config.format
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "csv"


class FileImport(FileConnector):
    name: ClassVar[str] = "file_import"
    description: ClassVar[str] = ("CSV and JSON Lines exports uploaded through the API or "
                                  "dropped in the tenant's import directory")
    Config: ClassVar[type[msgspec.Struct]] = FileImportConfig
    PluginConfig: ClassVar[type[msgspec.Struct]] = FileImportSettings
    suffixes: ClassVar[tuple[str, ...]] = (".csv", ".tsv", ".txt", ".jsonl", ".ndjson")

    def read(self, config: Any, path: Path, checkpoint: dict[str, Any] | None,
             batch_size: int) -> Iterator[SourceBatch]:
        size = os.path.getsize(path) or 1
        with open(path, "rb") as stream:
            if _format(config, path) == "jsonl":
                yield from self._jsonl(stream, checkpoint, batch_size, size)
            else:
                yield from self._csv(config, stream, checkpoint, batch_size, size)

    def _csv(self, config: FileImportConfig, stream: BinaryIO,
             checkpoint: dict[str, Any] | None, batch_size: int,
             size: int) -> Iterator[SourceBatch]:
        lines = _Lines(stream, config.encoding, 0, 0)
        reader = csv.reader(lines, delimiter=config.delimiter, quotechar=config.quotechar)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except csv.Error as exc:
            yield SourceBatch([SourceRecord(1, None, f"unreadable header: {exc}")], None, 1.0)
            return
        if checkpoint:  # resume: the header is re-read above, then jump past done rows
            stream.seek(checkpoint["offset"])
            lines.offset, lines.line = checkpoint["offset"], checkpoint["line"]
        width = len(header)
        records: list[SourceRecord] = []
        while True:
            start = lines.line + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                records.append(SourceRecord(start, None, f"malformed CSV: {exc}"))
                row = None
            if row is not None:
                if lines.bad_lines and lines.bad_lines[-1] >= start:
                    records.append(SourceRecord(
                        start, None, f"not valid {config.encoding} text"))
                elif len(row) != width:
                    if not (len(row) == 1 and not row[0].strip()):  # blank line
                        records.append(SourceRecord(
                            start, None, f"expected {width} columns, found {len(row)}"))
                else:
                    records.append(SourceRecord(start, dict(zip(header, row, strict=True))))
            if len(records) >= batch_size:
                yield SourceBatch(records, {"offset": lines.offset, "line": lines.line},
                                  lines.offset / size)
                records = []
        yield SourceBatch(records, {"offset": lines.offset, "line": lines.line}, 1.0)

    def _jsonl(self, stream: BinaryIO, checkpoint: dict[str, Any] | None, batch_size: int,
               size: int) -> Iterator[SourceBatch]:
        offset, line = (checkpoint["offset"], checkpoint["line"]) if checkpoint else (0, 0)
        stream.seek(offset)
        decode = msgspec.json.Decoder().decode
        records: list[SourceRecord] = []
        for raw in stream:
            offset += len(raw)
            line += 1
            if not raw.strip():
                continue
            try:
                value = decode(raw)
            except msgspec.DecodeError as exc:
                records.append(SourceRecord(line, None, f"invalid JSON: {exc}"))
            else:
                if isinstance(value, dict):
                    records.append(SourceRecord(line, value))
                else:
                    records.append(SourceRecord(line, None, "a line must hold a JSON object"))
            if len(records) >= batch_size:
                yield SourceBatch(records, {"offset": offset, "line": line}, offset / size)
                records = []
        yield SourceBatch(records, {"offset": offset, "line": line}, 1.0)
