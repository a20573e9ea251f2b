from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.deps import Ctx, CursorParam, Db, LimitParam
from core.customers import service
from core.customers.schemas import Customer, Customer360, Note, NoteCreate, TimelineItem
from core.gdpr import service as gdpr
from core.identity import service as identity
from core.pagination import DEFAULT_LIMIT, Page


class CustomerController(Controller):
    path = "/v1/tenants/{tenant:str}/customers"
    tags = ["tenant: customers"]

    @get("/", opt={"scope": "customers:read"},
         summary="Look up by one identifier (email, phone or kind:value), or list profiles")
    async def find(self, db: Db, ctx: Ctx, email: FromQuery[str | None] = None,
                   phone: FromQuery[str | None] = None,
                   identifier: FromQuery[str | None] = None, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[Customer]:
        return await service.find_customers(db, ctx, email=email, phone=phone,
                                            identifier=identifier, cursor=cursor, limit=limit)

    @get("/{customer_id:uuid}", opt={"scope": "customers:read"},
         summary="360° view: profile, identifiers, consents, preferences, stage")
    async def get_customer(self, db: Db, ctx: Ctx,
                           customer_id: FromPath[uuid.UUID]) -> Customer360:
        return await service.get_customer(db, ctx, customer_id)

    @get("/{customer_id:uuid}/timeline", opt={"scope": "customers:read"},
         summary="Events, messages, notes and merges in one stream, newest first")
    async def timeline(self, db: Db, ctx: Ctx, customer_id: FromPath[uuid.UUID],
                       cursor: CursorParam = None, limit: LimitParam = DEFAULT_LIMIT,
                       kind: FromQuery[list[str] | None] = None) -> Page[TimelineItem]:
        return await service.timeline(db, ctx, customer_id, cursor=cursor, limit=limit,
                                      kinds=kind)

    @get("/{customer_id:uuid}/merges", opt={"scope": "customers:read"},
         summary="Merge history of this profile, newest first")
    async def merges(self, db: Db, ctx: Ctx, customer_id: FromPath[uuid.UUID],
                     cursor: CursorParam = None,
                     limit: LimitParam = DEFAULT_LIMIT) -> Page[identity.Merge]:
        return await identity.list_merges(db, ctx, customer_id, cursor=cursor, limit=limit)

    @post("/{customer_id:uuid}/notes", opt={"scope": "customers:write"},
          summary="Add a service note (agency, call centre, chat)")
    async def add_note(self, db: Db, ctx: Ctx, customer_id: FromPath[uuid.UUID],
                       data: JSONBody[NoteCreate]) -> Note:
        return await service.add_note(db, ctx, customer_id, data)

    @get("/{customer_id:uuid}/notes", opt={"scope": "customers:read"},
         summary="Service notes, newest first")
    async def notes(self, db: Db, ctx: Ctx, customer_id: FromPath[uuid.UUID],
                    cursor: CursorParam = None,
                    limit: LimitParam = DEFAULT_LIMIT) -> Page[Note]:
        return await service.list_notes(db, ctx, customer_id, cursor=cursor, limit=limit)

    @post("/{customer_id:uuid}/export", opt={"scope": "customers:read"}, status_code=200,
          summary="GDPR export: everything held about the person, as JSON")
    async def export(self, db: Db, ctx: Ctx, customer_id: FromPath[uuid.UUID]) -> dict[str, Any]:
        return await gdpr.export(db, ctx, customer_id)

    @post("/{customer_id:uuid}/erase", opt={"scope": "customers:write"}, status_code=200,
          summary="GDPR erasure; identifiers go to the suppression list (hashed)")
    async def erase(self, db: Db, ctx: Ctx, customer_id: FromPath[uuid.UUID]) -> gdpr.Erasure:
        return await gdpr.erase(db, ctx, customer_id)
