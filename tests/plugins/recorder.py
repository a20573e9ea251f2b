"""A test plugin that records the ingestion reactions it receives, registered in the running
app the way an installed package is (a manager rebuilt with it, as at start-up)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from plugins import hookspecs
from plugins.manager import load_plugins
from plugins.types import CustomerMerge, IngestedEvent, RuleType
from tests.conftest import auth

COMPONENT = "test_recorder"


class Recorder:
    """Contributes a rule, so only tenants that enable `test_recorder` reach it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[IngestedEvent]]] = []
        self.merges: list[tuple[str, list[CustomerMerge]]] = []

    @hookspecs.hookimpl
    def relais_rule_types(self) -> list[RuleType]:
        return [RuleType(name=COMPONENT, description="records ingestion reactions")]

    @hookspecs.hookimpl
    async def relais_event_ingested(self, tenant_id: str, events: Any) -> None:
        self.events.append((tenant_id, list(events)))

    @hookspecs.hookimpl
    def relais_customers_merged(self, tenant_id: str, merges: Any) -> None:
        self.merges.append((tenant_id, list(merges)))

    def calls(self, tenant_id: str) -> tuple[list[list[IngestedEvent]], list[list[CustomerMerge]]]:
        """The batches this tenant's reactions delivered, per hook."""
        return ([batch for t, batch in self.events if t == tenant_id],
                [batch for t, batch in self.merges if t == tenant_id])

    def clear(self) -> None:
        self.events.clear()
        self.merges.clear()


@contextmanager
def installed(app: Any, *plugins: tuple[str, object]) -> Iterator[None]:
    """The running app's plugin manager rebuilt with `plugins` (built-ins first, no entry
    points), restored afterwards."""
    saved = app.state.plugins
    app.state.plugins = load_plugins(entry_points=False, extra=plugins)
    try:
        yield
    finally:
        app.state.plugins = saved


async def enable(client: Any, hq_key: str, tenant_id: str, key: str,
                 name: str = COMPONENT) -> None:
    """HQ allows the component and the tenant enables it, through the API."""
    r = await client.put(f"/v1/hq/plugins/{name}", headers=auth(hq_key), json={"allowed": True})
    assert r.status_code == 200, r.text
    r = await client.put(f"/v1/tenants/{tenant_id}/plugins/{name}", headers=auth(key),
                         json={"config": {}})
    assert r.status_code == 200, r.text
