"""A file connector: fixed-width exports of a legacy ticketing system.

Each line is one record; `columns` says where each field sits (0-based start, end
excluded). The checkpoint is the byte offset of the next line, so a restarted import
resumes where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from core.connectors.mapping import Mapping
from plugins.connectors import FileConnector, SourceBatch, SourceRecord


class FixedWidthConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mapping: Mapping
    # field name -> [start, end]
    columns: dict[str, tuple[int, int]]
    encoding: str = "latin-1"  # what those systems usually write
    skip_lines: int = 0  # header lines


class FixedWidthImport(FileConnector):
    name: ClassVar[str] = "fixed_width"
    description: ClassVar[str] = "Fixed-width text exports (legacy ticketing systems)"
    Config: ClassVar[type[msgspec.Struct]] = FixedWidthConfig
    suffixes: ClassVar[tuple[str, ...]] = (".txt", ".dat")

    def read(self, config: Any, path: Path, checkpoint: dict[str, Any] | None,
             batch_size: int) -> Iterator[SourceBatch]:
        size = os.path.getsize(path) or 1
        width = max((end for _, end in config.columns.values()), default=0)
        offset, line = (checkpoint["offset"], checkpoint["line"]) if checkpoint else (0, 0)
        records: list[SourceRecord] = []
        with open(path, "rb") as stream:
            stream.seek(offset)
            for raw in stream:
                offset += len(raw)
                line += 1
                text = raw.decode(config.encoding).rstrip("\r\n")
                if line <= config.skip_lines or not text.strip():
                    continue
                if len(text) < width:
                    records.append(SourceRecord(line, None, f"line shorter than {width} "
                                                            "characters"))
                else:
                    records.append(SourceRecord(line, {
                        name: text[start:end].strip()
                        for name, (start, end) in config.columns.items()}))
                if len(records) >= batch_size:
                    yield SourceBatch(records, {"offset": offset, "line": line}, offset / size)
                    records = []
        yield SourceBatch(records, {"offset": offset, "line": line}, 1.0)
