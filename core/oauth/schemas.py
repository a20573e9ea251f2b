"""Boundary types of the OAuth2 authorisation server (client registry, tenant policy,
grants). The protocol endpoints themselves speak RFC 6749 form/JSON, not these Structs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

ClientType = Literal["confidential", "public"]
GrantType = Literal["authorization_code", "client_credentials", "refresh_token"]
PolicyMode = Literal["open", "allowlist"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
RedirectUris = Annotated[list[str], msgspec.Meta(max_length=20)]
ClientScopes = Annotated[list[str], msgspec.Meta(min_length=1, max_length=64)]
GrantTypes = Annotated[list[GrantType], msgspec.Meta(min_length=1, max_length=3)]


class OAuthClient(msgspec.Struct):
    client_id: str
    name: str
    client_type: ClientType
    redirect_uris: list[str]
    scopes: list[str]
    grant_types: list[str]
    tenant: str | None
    can_introspect: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    secret_rotated_at: datetime | None
    disabled_at: datetime | None


class CreatedOAuthClient(OAuthClient):
    # The secret of a confidential client; returned once (creation or rotation), never stored.
    client_secret: str | None = None


class OAuthClientCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    client_type: ClientType
    scopes: ClientScopes
    grant_types: GrantTypes
    redirect_uris: RedirectUris = msgspec.field(default_factory=list)
    # Binds the client to one tenant: required for client_credentials (no human consents
    # to that grant, so HQ decides which tenant the partner's machine may reach).
    tenant: str | None = None
    # A resource server may introspect any token; other clients only their own.
    can_introspect: bool = False


class OAuthClientUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    redirect_uris: RedirectUris | msgspec.UnsetType = msgspec.UNSET
    scopes: ClientScopes | msgspec.UnsetType = msgspec.UNSET
    grant_types: GrantTypes | msgspec.UnsetType = msgspec.UNSET
    can_introspect: bool | msgspec.UnsetType = msgspec.UNSET


class AccessPolicy(msgspec.Struct):
    """Which registered partners may reach a tenant. `open`: any partner HQ registered (each
    still needs an admin's consent, or HQ's tenant binding for client credentials);
    `allowlist`: only the clients listed."""

    tenant_id: str
    mode: PolicyMode
    allowed_clients: list[str]
    updated_at: datetime | None = None
    updated_by: str | None = None


class AccessPolicyUpdate(msgspec.Struct, forbid_unknown_fields=True):
    mode: PolicyMode
    allowed_clients: Annotated[list[str], msgspec.Meta(max_length=500)] = msgspec.field(
        default_factory=list)


class OAuthGrant(msgspec.Struct):
    """One authorisation of a partner in a tenant, with its live token count."""

    id: str
    client_id: str
    client_name: str
    grant_type: str
    subject: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None
    active_tokens: int
