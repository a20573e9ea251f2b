"""GDPR: export everything held about a person; erase it.

Erasure covers the person, i.e. the live profile and every profile merged into it. It
deletes identifiers, notes, preferences, subscriptions and current consents; it blanks the
profile columns, extension attributes and event properties; it keeps anonymised facts
(event types and times, lifecycle stage, country, consent history without proof) so
aggregates stay right. The identifiers go to the suppression list as keyed hashes, so
re-ingesting them is refused, and the erasure is audited without personal data.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from core.audit.service import record
from core.consents.service import fetch_consents, fetch_preferences
from core.customers.service import CUSTOMER_COLUMNS, require_customer, to_customer
from core.db import Database
from core.identity.normalise import hash_identifier
from core.messaging.service import anonymise_customer_messages
from core.model.service import load_data_config
from tenants.context import TenantContext


class Erasure(msgspec.Struct):
    customer_id: uuid.UUID
    profiles: int
    identifiers_suppressed: int
    events_anonymised: int
    erased_at: datetime


async def export(db: Database, ctx: TenantContext, customer_id: uuid.UUID) -> dict[str, Any]:
    async with db.tenant_tx(ctx) as conn:
        row = await require_customer(conn, customer_id)
        cid = row["id"]
        merged = await conn.fetch(
            f"select {CUSTOMER_COLUMNS} from customers where merged_into = $1 order by id", cid)
        ids = [cid, *[m["id"] for m in merged]]

        async def rows(sql: str) -> list[dict[str, Any]]:
            return [dict(r) for r in await conn.fetch(sql, ids)]

        document = {
            "exported_at": datetime.now(UTC),
            "tenant": ctx.tenant_id,
            "profile": to_customer(row),
            "merged_profiles": [to_customer(m) for m in merged],
            "identifiers": await rows(
                """select kind, value, status, source, first_seen, last_seen from identifiers
                   where customer_id = any($1::uuid[]) order by kind, value"""),
            "consents": await fetch_consents(conn, cid),
            "consent_history": await rows(
                """select channel, purpose, status, legal_basis, source, proof, recorded_at,
                          actor from consent_history where customer_id = any($1::uuid[])
                   order by id"""),
            "preferences": await fetch_preferences(conn, cid),
            "notes": await rows(
                """select id, author, channel, text, created_at from customer_notes
                   where customer_id = any($1::uuid[]) order by id"""),
            "merges": await rows(
                """select survivor_id, merged_id, reason, details, merged_at from customer_merges
                   where survivor_id = any($1::uuid[]) or merged_id = any($1::uuid[])
                   order by id"""),
            "events": await rows(
                """select message_id, type, occurred_at, received_at, properties, source
                   from events where customer_id = any($1::uuid[]) order by occurred_at, id"""),
            "messages": await rows(
                """select id, channel, category, purpose, status, to_address, template_id,
                          locale, scheduled_at, sent_at from messages
                   where customer_id = any($1::uuid[]) order by planned_at, id"""),
        }
        await record(conn, ctx, "customer.exported", "customer", str(cid),
                     {"events": len(document["events"])})
    return msgspec.to_builtins(document)


async def erase(db: Database, ctx: TenantContext, customer_id: uuid.UUID) -> Erasure:
    async with db.tenant_tx(ctx) as conn:
        row = await require_customer(conn, customer_id)
        cid = row["id"]
        ids = [cid, *[r["id"] for r in await conn.fetch(
            "select id from customers where merged_into = $1", cid)]]
        await conn.execute("select 1 from customers where id = any($1::uuid[]) for update", ids)
        config = await load_data_config(conn, ctx)
        identifiers = await conn.fetch(
            "select kind, value from identifiers where customer_id = any($1::uuid[])", ids)
        key = config.suppression_key(db.keys)
        hashes = [(r["kind"], hash_identifier(r["kind"], r["value"], key)) for r in identifiers]
        await conn.execute(
            """insert into suppressions (tenant_id, kind, value_hash, reason)
               select $1, k, h, 'erasure' from unnest($2::text[], $3::text[]) as u(k, h)
               on conflict do nothing""",
            ctx.tenant_id, [k for k, _ in hashes], [h for _, h in hashes])
        for table in ("identifiers", "customer_notes", "preferences", "transit_subscriptions",
                      "consents"):
            await conn.execute(f"delete from {table} where customer_id = any($1::uuid[])", ids)
        await conn.execute(
            "update consent_history set proof = null where customer_id = any($1::uuid[])", ids)
        events = await conn.fetchval(
            """with done as (update events set properties = '{}'
                             where customer_id = any($1::uuid[]) and properties <> '{}'
                             returning 1)
               select count(*) from done""", ids)
        await conn.execute(
            """update customer_merges set reason = jsonb_build_object('kind', reason->'kind')
               where survivor_id = any($1::uuid[]) or merged_id = any($1::uuid[])""", ids)
        await anonymise_customer_messages(conn, ids)  # contact history keeps counting
        erased_at = await conn.fetchval(
            """update customers set first_name = null, last_name = null, email = null,
                   phone = null, birth_date = null, postal_code = null, attributes = '{}',
                   field_meta = '{}', erased_at = now(), updated_at = now()
               where id = any($1::uuid[]) returning erased_at""", ids)
        await record(conn, ctx, "customer.erased", "customer", str(cid),
                     {"profiles": len(ids), "identifiers_suppressed": len(hashes),
                      "events_anonymised": events})
    return Erasure(customer_id=cid, profiles=len(ids), identifiers_suppressed=len(hashes),
                   events_anonymised=events, erased_at=erased_at)
