from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, JSONBody, QueryParameter

from api.deps import Ctx, CursorParam, Db, LimitParam
from core.errors import InvalidInput, MalformedBody, PayloadTooLarge
from core.events import imports, service
from core.events.prepare import decode_batch, error_location
from core.events.reactions import Reactions
from core.events.schemas import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ITEMS,
    BatchResult,
    EventIn,
    IdentifyIn,
    ImportCreate,
    ImportJob,
    ItemResult,
    QuarantinedEvent,
    StoredEvent,
)
from core.pagination import DEFAULT_LIMIT, Page

SourceParam = Annotated[str, QueryParameter(
    pattern=r"^[a-z][a-z0-9_.-]{0,63}$",
    description="producer of the data (survivorship `source_priority` compares it)")]


def _single(result: ItemResult) -> ItemResult:
    """A rejected single item is a 422 naming its field (without the batch prefix)."""
    if result.status == "rejected":
        field = (result.field or "").removeprefix("items[0]").lstrip(".") or "body"
        raise InvalidInput(result.reason or "rejected", field=field)
    return result


def _raw_batch_operation(item_schema: str) -> type[Operation]:
    """The batch bodies are decoded by hand (each item on its own, so one bad item is a
    per-item rejection, not a 400 for the batch); this documents them in OpenAPI."""

    @dataclass
    class RawBatchOperation(Operation):
        def __post_init__(self) -> None:
            items = Schema(type=OpenAPIType.ARRAY, max_items=MAX_BATCH_ITEMS,
                           items=Reference(ref=f"#/components/schemas/{item_schema}"))
            body = Schema(type=OpenAPIType.OBJECT, required=["items"],
                          properties={"items": items})
            self.request_body = RequestBody(
                required=True, content={"application/json": OpenAPIMediaType(schema=body)})

    return RawBatchOperation


async def _batch_items(request: Request, item_type: type) -> list[Any]:
    body = await request.body()  # bounded by the route's request_max_body_size (413)
    try:
        items = decode_batch(body, item_type)
    except msgspec.ValidationError as err:
        message, field = error_location(err)
        raise InvalidInput(message, field=field or "body") from None
    except msgspec.DecodeError as err:
        raise MalformedBody(f"request body is not valid JSON: {err}", field="body") from None
    _check_batch(len(items))
    return items


def _reactions(request: Request) -> Reactions:
    """The plugins the ingestion services tell about stored events and merges."""
    state = request.app.state
    return Reactions(state.plugins, settings=state.settings)


def _check_batch(count: int) -> None:
    if count > MAX_BATCH_ITEMS:
        raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH_ITEMS} items, got {count}",
                              field="items")
    if count == 0:
        raise InvalidInput("a batch needs at least one item", field="items")


class IngestController(Controller):
    path = "/v1/tenants/{tenant:str}"
    tags = ["tenant: ingestion"]

    @post("/identify", opt={"scope": "customers:write"}, status_code=200,
          summary="Upsert a profile by identifiers and traits")
    async def identify(self, request: Request, db: Db, ctx: Ctx, data: JSONBody[IdentifyIn],
                       source: SourceParam = "api") -> ItemResult:
        return _single((await service.identify(db, ctx, [data], source=source,
                                               reactions=_reactions(request)))[0])

    @post("/identify:batch", opt={"scope": "customers:write", "accepts_nul": True},
          status_code=200,
          request_max_body_size=MAX_BATCH_BYTES,
          operation_class=_raw_batch_operation("IdentifyIn"),
          summary="Upsert up to 1,000 profiles; one result per item")
    async def identify_batch(self, request: Request, db: Db, ctx: Ctx,
                             source: SourceParam = "api") -> BatchResult:
        items = await _batch_items(request, IdentifyIn)
        return BatchResult.of(await service.identify(db, ctx, items, source=source,
                                                     reactions=_reactions(request)))

    @post("/events", opt={"scope": "events:write"}, status_code=200,
          summary="Ingest one event (idempotent by message_id)")
    async def track(self, request: Request, db: Db, ctx: Ctx, data: JSONBody[EventIn],
                    source: SourceParam = "api") -> ItemResult:
        return _single((await service.ingest_events(db, ctx, [data], source=source,
                                                    reactions=_reactions(request)))[0])

    @post("/events:batch", opt={"scope": "events:write", "accepts_nul": True},
          status_code=200,
          request_max_body_size=MAX_BATCH_BYTES,
          operation_class=_raw_batch_operation("EventIn"),
          summary="Ingest up to 1,000 events / 1 MB; one result per item")
    async def track_batch(self, request: Request, db: Db, ctx: Ctx,
                          source: SourceParam = "api") -> BatchResult:
        items = await _batch_items(request, EventIn)
        return BatchResult.of(await service.ingest_events(db, ctx, items, source=source,
                                                          reactions=_reactions(request)))

    @get("/events/quarantine", opt={"scope": "events:read"},
         summary="Events held back by the tracking plan, with reasons (newest first)")
    async def quarantine(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                         limit: LimitParam = DEFAULT_LIMIT) -> Page[QuarantinedEvent]:
        return await service.list_quarantine(db, ctx, cursor=cursor, limit=limit)

    @get("/events/{message_id:str}", opt={"scope": "events:read"},
         summary="One stored event by its message_id")
    async def get_event(self, db: Db, ctx: Ctx, message_id: FromPath[str]) -> StoredEvent:
        return await service.get_event(db, ctx, message_id)

    @post("/imports", opt={"scope": "events:write"}, status_code=202,
          request_max_body_size=imports.MAX_IMPORT_BYTES,
          summary="Queue a large batch (events or identify) for a background job")
    async def create_import(self, request: Request, db: Db, ctx: Ctx,
                            data: JSONBody[ImportCreate]) -> ImportJob:
        state = request.app.state
        return await imports.create_import(db, state.arq, state.settings, ctx, data)

    @get("/imports/{import_id:uuid}", opt={"scope": "events:read"},
         summary="Progress and per-item results of an import")
    async def get_import(self, db: Db, ctx: Ctx, import_id: FromPath[uuid.UUID]) -> ImportJob:
        return await imports.get_import(db, ctx, import_id)
