"""What templates can print: the four namespaces of the render context.

- `customer`: the profile's core fields, its extension fields (flattened: tenants add
  extension fields, never redefine core ones) and `id`;
- `event`: the properties of the event or API call the message answers;
- `tenant`: the tenant's identity (`id`, `name`, `country`, `timezone`, `locale`) and its
  template settings (postal address, support phone...);
- `message`: `id`, `channel`, `locale`, `unsubscribe_url`.

Reads of the customer tables live here (set-based, one query per batch) so preview and
dispatch build exactly the same context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import Any
from uuid import UUID

import msgspec

from core.db import Connection
from core.errors import InvalidInput
from tenants.context import TenantContext

TENANT_RESERVED = frozenset({"id", "name", "country", "timezone", "locale"})
MESSAGE_KEYS = frozenset({"id", "channel", "locale", "unsubscribe_url", "category"})
_CORE_COLUMNS = ("first_name", "last_name", "email", "phone", "language", "country",
                 "birth_date", "postal_code", "stage")


class CustomerRecord(msgspec.Struct, frozen=True):
    id: UUID
    fields: dict[str, Any]
    language: str | None
    email: str | None
    phone: str | None
    push_token: str | None
    merged_into: UUID | None
    erased: bool


async def load_customers(conn: Connection, ids: Iterable[UUID]) -> dict[UUID, CustomerRecord]:
    """Profiles by id, in the caller's tenant transaction. A merged-away profile resolves to
    its survivor (one hop: merges always point at the surviving profile)."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"""select c.id as asked, s.id, {", ".join("s." + c for c in _CORE_COLUMNS)},
                   s.attributes, s.merged_into, s.erased_at is not null as erased,
                   coalesce(p.language, s.language) as preferred_language
            from customers c
            join customers s on s.tenant_id = c.tenant_id
                            and s.id = coalesce(c.merged_into, c.id)
            left join preferences p on p.tenant_id = s.tenant_id and p.customer_id = s.id
            where c.id = any($1::uuid[])""", wanted)
    customers = {}
    for r in rows:
        attributes = r["attributes"] or {}
        fields = {**attributes, **{c: _plain(r[c]) for c in _CORE_COLUMNS}, "id": str(r["id"])}
        token = attributes.get("push_token")
        customers[r["asked"]] = CustomerRecord(
            id=r["id"], fields=fields, language=r["preferred_language"], email=r["email"],
            phone=r["phone"], push_token=token if isinstance(token, str) else None,
            merged_into=r["merged_into"], erased=r["erased"])
    return customers


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


async def tenant_namespace(conn: Connection, ctx: TenantContext) -> dict[str, Any]:
    row = await conn.fetchrow(
        """select t.name, s.settings from tenants t
           left join template_settings s on s.tenant_id = t.id where t.id = $1""",
        ctx.tenant_id)
    settings = (row["settings"] if row else None) or {}
    return {**settings, "id": ctx.tenant_id, "name": row["name"] if row else ctx.tenant_id,
            "country": ctx.country, "timezone": ctx.timezone, "locale": ctx.default_locale}


async def known_variables(conn: Connection) -> Callable[[str], bool]:
    """The tenant's data dictionary as a predicate over dotted paths (for static checks)."""
    rows = await conn.fetch(
        "select name from hq_core_fields union select name from tenant_fields")
    customer_fields = {r["name"] for r in rows} | {"id"}
    settings = await conn.fetchval("select settings from template_settings") or {}
    tenant_keys = TENANT_RESERVED | set(settings)

    def known(dotted: str) -> bool:
        root, _, rest = dotted.partition(".")
        head = rest.split(".", 1)[0]
        if not head or root == "event":
            return True
        if root == "customer":
            return head in customer_fields
        if root == "tenant":
            return head in tenant_keys
        if root == "message":
            return head in MESSAGE_KEYS
        return False

    return known


def check_settings(values: dict[str, Any]) -> None:
    for key in values:
        if key in TENANT_RESERVED:
            raise InvalidInput(f"{key!r} is reserved (tenant.{key} is set by Relais)",
                               field=f"values.{key}")
        if not key.replace("_", "").isalnum() or not key[:1].isalpha() or len(key) > 63:
            raise InvalidInput("setting names are letters, digits and _", field=f"values.{key}")


def render_context(customer: dict[str, Any], event: dict[str, Any], tenant: dict[str, Any],
                   message: dict[str, Any]) -> dict[str, Any]:
    return {"customer": customer, "event": event, "tenant": tenant, "message": message}
