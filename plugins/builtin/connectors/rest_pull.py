"""Pull connector for a paginated JSON REST source (CRM, loyalty manager, data lake API).

Each sync asks for the records changed since the previous sync (`updated_since_param`, set
from the largest `updated_at_field` seen) and follows the source's pagination cursor
(`next_cursor_path` in the answer, sent back as `cursor_param`). After every page the
platform ingests the records and saves the checkpoint `{since, cursor, max_seen}`; a crashed
sync resumes at the page after the last one ingested. The last page's checkpoint
`{since: max_seen}` is where the next scheduled sync starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import httpx
import msgspec

from core.connectors.mapping import Mapping
from plugins.connectors import PullConnector, SourceBatch, SourceRecord


class RestPullConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mapping: Mapping
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/]+")]
    # Dotted path to the list of records in a page; empty: the page is the list.
    items_path: str = "items"
    next_cursor_path: str | None = "next_cursor"
    cursor_param: str = "cursor"
    updated_since_param: str | None = "updated_since"
    updated_at_field: str | None = "updated_at"
    page_size_param: str | None = "limit"
    page_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    token: str | None = None  # sent as `Authorization: Bearer <token>`
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 30.0


class RestPullSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Tenant-wide settings. HQ typically locks `allowed_hosts` to the group's own APIs."""

    allowed_hosts: list[str] = msgspec.field(default_factory=list)  # empty: any host
    min_interval_minutes: Annotated[int, msgspec.Meta(ge=1)] = 5
    max_pages_per_sync: Annotated[int, msgspec.Meta(ge=1)] = 100_000


class SourceError(Exception):
    """The source answered something a sync cannot use; the run fails with this reason."""


def _at(value: Any, path: str | None) -> Any:
    for part in (path.split(".") if path else ()):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def host_allowed(url: str, allowed: list[str]) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return not allowed or any(
        host == pattern.lower() or (pattern.startswith("*.") and host.endswith(pattern[1:]))
        for pattern in allowed)


class RestPull(PullConnector):
    name: ClassVar[str] = "rest_pull"
    description: ClassVar[str] = ("Scheduled pull of a paginated JSON REST API with a "
                                  "cursor / updated-since checkpoint")
    Config: ClassVar[type[msgspec.Struct]] = RestPullConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token", "headers"})
    PluginConfig: ClassVar[type[msgspec.Struct]] = RestPullSettings

    async def pages(self, config: Any, plugin_config: Any, checkpoint: dict[str, Any] | None,
                    client: httpx.AsyncClient) -> AsyncIterator[SourceBatch]:
        if not host_allowed(config.url, plugin_config.allowed_hosts):
            raise SourceError(f"host of {config.url} is not in the allowed hosts")
        state = checkpoint or {}
        since, cursor = state.get("since"), state.get("cursor")
        max_seen = state.get("max_seen", since)
        headers = dict(config.headers)
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        for _ in range(plugin_config.max_pages_per_sync):
            params: dict[str, Any] = {}
            if config.page_size_param:
                params[config.page_size_param] = config.page_size
            if since and config.updated_since_param:
                params[config.updated_since_param] = since
            if cursor:
                params[config.cursor_param] = cursor
            response = await client.get(config.url, params=params, headers=headers,
                                        timeout=config.timeout)
            if response.status_code != 200:
                raise SourceError(f"source answered HTTP {response.status_code}")
            try:
                page = msgspec.json.decode(response.content)
            except msgspec.DecodeError as exc:
                raise SourceError(f"source answered invalid JSON: {exc}") from None
            items = _at(page, config.items_path)
            if not isinstance(items, list):
                raise SourceError(f"no list at {config.items_path or 'the top'} of the page")
            records = []
            for i, item in enumerate(items, start=1):
                if not isinstance(item, dict):
                    records.append(SourceRecord(i, None, "an item must be a JSON object"))
                    continue
                records.append(SourceRecord(i, item))
                seen = _at(item, config.updated_at_field)
                if isinstance(seen, str | int | float) and (max_seen is None
                                                            or str(seen) > str(max_seen)):
                    max_seen = str(seen)
            next_cursor = _at(page, config.next_cursor_path)
            if next_cursor in (None, "") or not items:
                yield SourceBatch(records, {"since": max_seen}, 1.0)
                return
            cursor = str(next_cursor)
            yield SourceBatch(records, {"since": since, "cursor": cursor,
                                        "max_seen": max_seen})
        raise SourceError(f"stopped after {plugin_config.max_pages_per_sync} pages")
