from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from core.connectors.sync import execute_run
from core.plugin_config.secrets import SecretBox
from tenants.context import TenantContext
from tenants.service import tenant_context
from tests.conftest import HQ, auth


@dataclass
class Tenant:
    id: str
    key: str
    ctx: TenantContext
    client: Any
    app: Any

    @property
    def base(self) -> str:
        return f"/v1/tenants/{self.id}"

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.key)

    async def request(self, method: str, path: str, **kw: Any):
        headers = self.headers | kw.pop("headers", {})
        return await self.client.request(method, self.base + path, headers=headers, **kw)

    async def enable(self, hq_key: str, plugin: str, config: dict | None = None,
                     **governance: Any) -> None:
        r = await self.client.put(f"/v1/hq/plugins/{plugin}", headers=auth(hq_key),
                                  json={"allowed": True} | governance)
        assert r.status_code == 200, r.text
        r = await self.request("PUT", f"/plugins/{plugin}", json={"config": config or {}})
        assert r.status_code == 200, r.text

    async def connector(self, connector_id: str, type_: str, config: dict,
                        **extra: Any) -> dict:
        r = await self.request("POST", "/connectors", json={
            "id": connector_id, "type": type_, "name": connector_id, "config": config} | extra)
        assert r.status_code == 201, r.text
        return r.json()

    async def execute(self, run_id: str, **kw: Any) -> dict:
        """Run the job of a run right here (what the arq worker does)."""
        state = self.app.state
        await execute_run(state.db, self.ctx, state.plugins,
                          SecretBox.from_settings(state.settings), state.settings, run_id,
                          **kw)
        return await self.run(run_id)

    async def run(self, run_id: str) -> dict:
        async with self.app.state.db.tenant_tx(self.ctx) as conn:
            connector_id = await conn.fetchval(
                "select connector_id from connector_runs where id = $1", run_id)
        r = await self.request("GET", f"/connectors/{connector_id}/runs/{run_id}")
        assert r.status_code == 200, r.text
        return r.json()

    async def fetch(self, sql: str, *args: Any) -> list:
        async with self.app.state.db.tenant_tx(self.ctx) as conn:
            return await conn.fetch(sql, *args)


@pytest.fixture
async def tenant(client, db, make_tenant, make_key) -> Tenant:
    t = await make_tenant("cx")
    return Tenant(id=t.id, key=await make_key(t.id), client=client,
                  ctx=await tenant_context(db, t.id, HQ.actor),
                  app=client._transport.app)


RESUME_NOW = timedelta(0)  # treat a run left "running" as crashed at once
