"""Where import files live: `<data_dir>/imports/<tenant>/`.

- `uploads/`: files received through the API, kept until their run succeeds (a crashed run
  resumes from them);
- `inbox/`: the tenant's drop directory (an SFTP drop or a mounted bucket). A run may read a
  path only inside it: `..` and symlinks out of it are refused, so an API caller can never
  make the platform read an arbitrary file.

API and workers must share `data_dir` (a volume mounted on both) in a multi-pod deployment.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from core.errors import InvalidInput, NotFound, PayloadTooLarge
from core.settings import Settings, data_path

CHUNK = 1 << 20


def tenant_dir(settings: Settings, tenant_id: str, area: str) -> Path:
    path = data_path(settings, "imports", tenant_id, area, "x").parent
    path.mkdir(parents=True, exist_ok=True)
    return path


def inbox_path(settings: Settings, tenant_id: str, relative: str) -> Path:
    inbox = tenant_dir(settings, tenant_id, "inbox").resolve()
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        raise InvalidInput("path must be relative to the tenant's import directory",
                           field="path")
    path = (inbox / relative).resolve()
    if not path.is_relative_to(inbox):
        raise InvalidInput("path leaves the tenant's import directory", field="path")
    if not path.is_file():
        raise NotFound(f"no file {relative!r} in the tenant's import directory")
    return path


async def save_upload(settings: Settings, tenant_id: str, run_id: str, suffix: str,
                      chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[Path, int]:
    """Stream the body to disk chunk by chunk (constant memory); (path, size)."""
    path = tenant_dir(settings, tenant_id, "uploads") / f"{run_id}{suffix}"
    size = 0
    try:
        # Local-disk writes of 1 MB chunks: cheaper inline than a thread hop per chunk.
        with open(path, "wb") as out:  # noqa: ASYNC230
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"file is larger than {max_bytes // (1 << 20)} MB "
                                          "(max_file_mb of the plugin configuration)")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise InvalidInput("the uploaded file is empty", field="body")
    return path, size


def remove_upload(settings: Settings, tenant_id: str, path: str | None) -> None:
    if not path:
        return
    uploads = tenant_dir(settings, tenant_id, "uploads").resolve()
    target = Path(path).resolve()
    if target.is_relative_to(uploads):
        target.unlink(missing_ok=True)


def suffix_for(filename: str | None, content_type: str | None) -> str:
    if filename:
        suffix = os.path.splitext(filename)[1].lower()
        if suffix in (".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json"):
            return suffix
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines",
                 "application/json"):
        return ".jsonl"
    return ".csv"
