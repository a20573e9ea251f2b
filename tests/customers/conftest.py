from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import auth


@dataclass
class Tenant:
    id: str
    key: str
    client: object

    @property
    def base(self) -> str:
        return f"/v1/tenants/{self.id}"

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.key)

    async def post(self, path: str, json: object = None, **kw):
        return await self.client.post(self.base + path, json=json, headers=self.headers, **kw)

    async def put(self, path: str, json: object = None, **kw):
        return await self.client.put(self.base + path, json=json, headers=self.headers, **kw)

    async def get(self, path: str, **kw):
        return await self.client.get(self.base + path, headers=self.headers, **kw)


@pytest.fixture
async def tenant(client, make_tenant, make_key) -> Tenant:
    t = await make_tenant("cd")
    return Tenant(id=t.id, key=await make_key(t.id), client=client)
