from __future__ import annotations

from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody

from api.deps import Ctx, CursorParam, Db, LimitParam
from api.routes.overlays import overlay_controllers
from core.messaging import callbacks_urls, service, transactional
from core.messaging.policy import KIND as MESSAGING_POLICY
from core.messaging.schemas import CallbackUrls, Message, TransactionalSend
from core.pagination import DEFAULT_LIMIT, Page


class TenantMessageController(Controller):
    path = "/v1/tenants/{tenant:str}/messages"
    tags = ["tenant: messages"]

    @post("/", opt={"scope": "messages:write"}, status_code=202,
          summary="Send one transactional or alert message (idempotent)",
          responses={200: ResponseSpec(data_container=Message,
                                       description="A replay: the message the key created")})
    async def send(self, request: Request, db: Db, ctx: Ctx,
                   data: JSONBody[TransactionalSend]) -> Response[Message]:
        state = request.app.state
        message, created = await transactional.send(db, state.arq, state.settings,
                                                    state.plugins, ctx, data)
        return Response(message, status_code=202 if created else 200)

    @get("/", opt={"scope": "messages:read"}, summary="The contact history, newest first")
    async def list(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT,
                   customer_id: FromQuery[UUID | None] = None,
                   status: FromQuery[str | None] = None,
                   channel: FromQuery[str | None] = None,
                   source_type: FromQuery[str | None] = None,
                   source_id: FromQuery[str | None] = None) -> Page[Message]:
        return await service.list_messages(db, ctx, cursor=cursor, limit=limit,
                                           customer_id=customer_id, status=status,
                                           channel=channel, source_type=source_type,
                                           source_id=source_id)

    @get("/{msg_id:str}", opt={"scope": "messages:read"},
         summary="One message and its status history")
    async def get(self, db: Db, ctx: Ctx, msg_id: FromPath[str]) -> Message:
        return await service.get_message(db, ctx, msg_id)


class TenantCallbackController(Controller):
    path = "/v1/tenants/{tenant:str}/message-callbacks"
    tags = ["tenant: messages"]

    @get("/", opt={"scope": "messages:read"},
         summary="Signed URLs where providers post delivery reports, per sender plugin")
    async def get(self, request: Request, db: Db, ctx: Ctx) -> CallbackUrls:
        state = request.app.state
        return await callbacks_urls.callback_urls(db, state.settings, state.plugins, ctx)


HqMessagingPolicyController, TenantMessagingPolicyController = overlay_controllers(
    MESSAGING_POLICY, "messaging-policy", "messages")
