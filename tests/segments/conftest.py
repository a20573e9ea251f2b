from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.model.schemas import FieldCreate
from core.model.service import add_field
from core.segments.vocabulary import Vocabulary, tenant_vocabulary
from tenants.context import SYSTEM, TenantContext
from tenants.service import context_for
from tests.segments.dataset import EXTENSION_FIELDS


@dataclass
class SegWorld:
    ctx: TenantContext
    vocab: Vocabulary


async def make_world(db, make_tenant, prefix: str) -> SegWorld:
    tenant = await make_tenant(prefix)
    ctx = context_for(tenant, SYSTEM)
    for name, (type_, values) in EXTENSION_FIELDS.items():
        await add_field(db, ctx, FieldCreate(name=name, type=type_, enum_values=values))
    async with db.tenant_tx(ctx) as conn:
        vocab = await tenant_vocabulary(conn, ctx)
    return SegWorld(ctx, vocab)


@pytest.fixture(scope="session")
async def seg_world(db, make_tenant) -> SegWorld:
    return await make_world(db, make_tenant, "seg")
