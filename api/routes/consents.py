from __future__ import annotations

import uuid

from litestar import Controller, get, put
from litestar.params import FromPath, JSONBody

from api.deps import Ctx, CursorParam, Db, LimitParam
from core.consents import service
from core.consents.schemas import (
    Consent,
    ConsentChanges,
    ConsentHistoryEntry,
    Preferences,
    PreferencesUpdate,
)
from core.pagination import DEFAULT_LIMIT, Page


class ConsentController(Controller):
    path = "/v1/tenants/{tenant:str}/customers/{customer_id:uuid}"
    tags = ["tenant: consents"]

    @get("/consents", opt={"scope": "consents:read"},
         summary="Current consent per channel and purpose")
    async def consents(self, db: Db, ctx: Ctx,
                       customer_id: FromPath[uuid.UUID]) -> list[Consent]:
        return await service.list_consents(db, ctx, customer_id)

    @put("/consents", opt={"scope": "consents:write"},
         summary="Record consent decisions (kept in the history)")
    async def change(self, db: Db, ctx: Ctx, customer_id: FromPath[uuid.UUID],
                     data: JSONBody[ConsentChanges]) -> list[Consent]:
        return await service.set_consents(db, ctx, customer_id, data)

    @get("/consents/history", opt={"scope": "consents:read"},
         summary="Every consent decision, newest first")
    async def history(self, db: Db, ctx: Ctx, customer_id: FromPath[uuid.UUID],
                      cursor: CursorParam = None,
                      limit: LimitParam = DEFAULT_LIMIT) -> Page[ConsentHistoryEntry]:
        return await service.consent_history(db, ctx, customer_id, cursor=cursor, limit=limit)

    @get("/preferences", opt={"scope": "consents:read"},
         summary="Preferred channels, language, quiet hours, line/stop subscriptions")
    async def preferences(self, db: Db, ctx: Ctx,
                          customer_id: FromPath[uuid.UUID]) -> Preferences:
        return await service.get_preferences(db, ctx, customer_id)

    @put("/preferences", opt={"scope": "consents:write"}, summary="Replace preferences")
    async def set_preferences(self, db: Db, ctx: Ctx, customer_id: FromPath[uuid.UUID],
                              data: JSONBody[PreferencesUpdate]) -> Preferences:
        return await service.put_preferences(db, ctx, customer_id, data)
