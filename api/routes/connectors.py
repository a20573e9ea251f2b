"""Connectors: instances, sync runs, file uploads, and the inbound webhook URL."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody

from api.deps import Ctx, CursorParam, Db, LimitParam
from api.routes.plugins import PLUGIN_DEPENDENCIES, Box, Plugins
from core import ratelimit
from core.connectors import runs, service, sync
from core.connectors.schemas import (
    Connector,
    ConnectorCreate,
    ConnectorUpdate,
    DeliveryResult,
    Reject,
    Run,
    RunStart,
)
from core.db import Database
from core.errors import RateLimited, Unauthenticated
from core.pagination import DEFAULT_LIMIT, Page
from core.plugin_config.secrets import SecretBox
from core.settings import Settings
from tenants.context import Actor
from tenants.service import context_for, get_tenant

# Uploads stream to disk; the plugin's `max_file_mb` is the real limit.
MAX_UPLOAD_BYTES = 100 * (1 << 30)
MAX_DELIVERY_BYTES = 10 * (1 << 20) + 65_536


def provide_settings(request: Request) -> Settings:
    return request.app.state.settings


def provide_enqueue(request: Request) -> sync.Enqueue:
    return sync.Enqueue(request.app.state.arq, request.app.state.settings)


Cfg = NamedDependency[Settings]
Jobs = NamedDependency[sync.Enqueue]


class TenantConnectorController(Controller):
    path = "/v1/tenants/{tenant:str}/connectors"
    tags = ["tenant: connectors"]
    dependencies = PLUGIN_DEPENDENCIES | {
        "settings": Provide(provide_settings, sync_to_thread=False),
        "jobs": Provide(provide_enqueue, sync_to_thread=False),
    }

    @post("/", opt={"scope": "connectors:write"},
          summary="Create a connector of a type HQ allows and the tenant enabled")
    async def create(self, db: Db, ctx: Ctx, plugins: Plugins, box: Box, settings: Cfg,
                     data: JSONBody[ConnectorCreate]) -> Connector:
        return await service.create_connector(db, ctx, plugins, box, settings.base_url, data)

    @get("/", opt={"scope": "connectors:read"}, summary="List connectors")
    async def list(self, db: Db, ctx: Ctx, plugins: Plugins, box: Box, settings: Cfg,
                   cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[Connector]:
        return await service.list_connectors(db, ctx, plugins, box, settings.base_url,
                                             cursor=cursor, limit=limit)

    @get("/{connector_id:str}", opt={"scope": "connectors:read"}, summary="Get a connector")
    async def read(self, db: Db, ctx: Ctx, plugins: Plugins, box: Box, settings: Cfg,
                  connector_id: FromPath[str]) -> Connector:
        return await service.get_connector(db, ctx, plugins, box, settings.base_url,
                                           connector_id)

    @patch("/{connector_id:str}", opt={"scope": "connectors:write"},
           summary="Update a connector (secrets left out keep their value)")
    async def update(self, db: Db, ctx: Ctx, plugins: Plugins, box: Box, settings: Cfg,
                     connector_id: FromPath[str],
                     data: JSONBody[ConnectorUpdate]) -> Connector:
        return await service.update_connector(db, ctx, plugins, box, settings.base_url,
                                              connector_id, data)

    @delete("/{connector_id:str}", opt={"scope": "connectors:write"}, status_code=204,
            summary="Delete a connector and its runs (ingested data stays)")
    async def remove(self, db: Db, ctx: Ctx, connector_id: FromPath[str]) -> None:
        await service.delete_connector(db, ctx, connector_id)

    @post("/{connector_id:str}/runs", opt={"scope": "connectors:write"}, status_code=202,
          summary="Start a sync: a file of the import directory, or a pull now")
    async def start(self, db: Db, ctx: Ctx, plugins: Plugins, box: Box, settings: Cfg,
                    jobs: Jobs, connector_id: FromPath[str],
                    data: JSONBody[RunStart]) -> Run:
        return await sync.start_run(db, ctx, plugins, box, settings, jobs, connector_id, data)

    @post("/{connector_id:str}/uploads", opt={"scope": "connectors:write"}, status_code=202,
          request_max_body_size=MAX_UPLOAD_BYTES,
          summary="Upload a CSV or JSON Lines export (raw body, streamed) and import it")
    async def upload(self, request: Request, db: Db, ctx: Ctx, plugins: Plugins, box: Box,
                     settings: Cfg, jobs: Jobs, connector_id: FromPath[str],
                     filename: FromQuery[str | None] = None) -> Run:
        return await sync.upload(db, ctx, plugins, box, settings, jobs, connector_id, filename,
                                 request.headers.get("content-type"), request.stream())

    @get("/{connector_id:str}/runs", opt={"scope": "connectors:read"},
         summary="Sync runs, newest first: status, counters, progress, error sample")
    async def runs(self, db: Db, ctx: Ctx, connector_id: FromPath[str],
                   cursor: CursorParam = None, limit: LimitParam = DEFAULT_LIMIT) -> Page[Run]:
        return await runs.list_runs(db, ctx, connector_id, cursor=cursor, limit=limit)

    @get("/{connector_id:str}/runs/{run_id:str}", opt={"scope": "connectors:read"},
         summary="One sync run")
    async def run(self, db: Db, ctx: Ctx, connector_id: FromPath[str],
                  run_id: FromPath[str]) -> Run:
        return await runs.get_run(db, ctx, connector_id, run_id)

    @get("/{connector_id:str}/runs/{run_id:str}/rejects", opt={"scope": "connectors:read"},
         summary="Rejected rows of a run: line, field, reason")
    async def rejects(self, db: Db, ctx: Ctx, connector_id: FromPath[str],
                      run_id: FromPath[str], cursor: CursorParam = None,
                      limit: LimitParam = DEFAULT_LIMIT) -> Page[Reject]:
        return await runs.list_rejects(db, ctx, connector_id, run_id, cursor=cursor,
                                       limit=limit)


@post("/hooks/{tenant:str}/{connector_id:str}", opt={"public": True}, status_code=200,
      tags=["inbound webhooks"], request_max_body_size=MAX_DELIVERY_BYTES,
      summary="Inbound webhook of a push connector (HMAC signature, no API key)")
async def inbound_webhook(request: Request, tenant: FromPath[str],
                          connector_id: FromPath[str]) -> DeliveryResult:
    state = request.app.state
    db: Database = state.db
    try:
        found = await get_tenant(db, tenant)
    except Exception:
        raise Unauthenticated("unknown connector or bad signature") from None
    if found.status != "active":
        raise Unauthenticated("unknown connector or bad signature")
    settings = state.settings
    # No API key here, so the rate limit is per connector URL (floods cost DB lookups).
    decision = await ratelimit.hit(state.redis, settings.redis_prefix,
                                   f"hook:{tenant}:{connector_id}",
                                   settings.rate_limit_per_minute)
    if not decision.allowed:
        raise RateLimited(f"rate limit of {decision.limit} deliveries per minute exceeded",
                          retry_after=decision.reset_in)
    ctx = context_for(found, Actor(kind="connector", id=connector_id),
                      request.scope["state"].get("request_id"))
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await sync.receive_webhook(db, ctx, state.plugins,
                                      SecretBox.from_settings(state.settings), connector_id,
                                      body, headers)


connector_routes = [TenantConnectorController, inbound_webhook]
