"""Built-in connectors: file import, inbound webhook source, REST pull."""

from __future__ import annotations

from plugins.builtin.connectors.file_import import FileImport
from plugins.builtin.connectors.rest_pull import RestPull
from plugins.builtin.connectors.webhook_source import WebhookSource
from plugins.hookspecs import hookimpl
from plugins.types import ConnectorType


@hookimpl
def relais_connector_types() -> list[ConnectorType]:
    return [ConnectorType(FileImport()), ConnectorType(WebhookSource()),
            ConnectorType(RestPull())]
