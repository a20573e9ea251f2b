"""Objects of the OAuth area for the cross-tenant walk (tests/crosstenant.py)."""

from __future__ import annotations

from core.db import Database
from core.oauth import clients
from core.oauth.schemas import OAuthClientCreate
from core.oauth.store import ACCESS_PREFIX, Issued, issue_client_credentials, new_token
from tenants.context import HqContext, TenantContext


async def make_grant(db: Database, ctx: TenantContext) -> str:
    """A client-credentials grant (with its access token) in the tenant of `ctx`."""
    client = await clients.create_client(db, HqContext(), OAuthClientCreate(
        name="walk", client_type="confidential", scopes=["customers:read"],
        grant_types=["client_credentials"], tenant=ctx.tenant_id))
    access_id, access = new_token(ACCESS_PREFIX, ctx.tenant_id)
    issued = Issued(grant_type="client_credentials", scopes=["customers:read"],
                    subject=f"client:{client.client_id}", access_id=access_id,
                    access_token=access)
    return await issue_client_credentials(db, ctx, client.client_id, issued)
