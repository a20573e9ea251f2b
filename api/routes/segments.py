from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.deps import Ctx, CursorParam, Db, Hq, LimitParam
from core.jobs.context import enqueue, job_id
from core.pagination import DEFAULT_LIMIT, Page
from core.segments import hq as hq_segments
from core.segments import membership, service
from core.segments.definition import Condition
from core.segments.schemas import (
    HqPreview,
    Member,
    Preview,
    PreviewRequest,
    RefreshQueued,
    Segment,
    SegmentCreate,
    SegmentUpdate,
)
from tenants.service import list_tenant_ids


class HqPreviewRequest(msgspec.Struct, forbid_unknown_fields=True):
    definition: Condition
    tenants: Annotated[list[str], msgspec.Meta(max_length=1000)] | None = None


class HqRefreshQueued(msgspec.Struct):
    segment_id: str
    tenants: int
    queued: int


class TenantSegmentController(Controller):
    path = "/v1/tenants/{tenant:str}/segments"
    tags = ["tenant: segments"]

    @post("/preview", opt={"scope": "segments:read"}, status_code=200,
          summary="Count (and sample) the customers of a definition, without saving it")
    async def preview(self, db: Db, ctx: Ctx, data: JSONBody[PreviewRequest]) -> Preview:
        return await service.preview(db, ctx, data)

    @post("/", opt={"scope": "segments:write"}, summary="Save a local segment")
    async def create(self, db: Db, ctx: Ctx, data: JSONBody[SegmentCreate]) -> Segment:
        return await service.create_segment(db, ctx, data)

    @get("/", opt={"scope": "segments:read"},
         summary="Local and global segments, with this tenant's member counts")
    async def list_segments(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT,
                   include_archived: FromQuery[bool] = False) -> Page[Segment]:
        return await service.list_segments(db, ctx, cursor=cursor, limit=limit,
                                           include_archived=include_archived)

    @get("/{segment_id:str}", opt={"scope": "segments:read"}, summary="A segment")
    async def get_segment(self, db: Db, ctx: Ctx, segment_id: FromPath[str]) -> Segment:
        return await service.get_segment(db, ctx, segment_id)

    @patch("/{segment_id:str}", opt={"scope": "segments:write"},
           summary="Change a local segment (global ones are HQ's)")
    async def update(self, db: Db, ctx: Ctx, segment_id: FromPath[str],
                     data: JSONBody[SegmentUpdate]) -> Segment:
        return await service.update_segment(db, ctx, segment_id, data)

    @delete("/{segment_id:str}", opt={"scope": "segments:write"}, status_code=200,
            summary="Archive a local segment")
    async def archive(self, db: Db, ctx: Ctx, segment_id: FromPath[str]) -> Segment:
        return await service.archive_segment(db, ctx, segment_id)

    @post("/{segment_id:str}/refresh", opt={"scope": "segments:write"}, status_code=202,
          summary="Refresh the membership now (queued job)")
    async def refresh(self, request: Request, db: Db, ctx: Ctx,
                      segment_id: FromPath[str]) -> RefreshQueued:
        key = await membership.refresh_key(db, ctx, segment_id)
        settings = request.app.state.settings
        job = await enqueue(request.app.state.arq, settings, "refresh_segment_job",
                            tenant_id=ctx.tenant_id, key=key, segment_id=segment_id)
        return RefreshQueued(segment_id=segment_id, queued=job is not None,
                             job_id=job_id(settings, "refresh_segment_job", ctx.tenant_id, key))

    @get("/{segment_id:str}/members", opt={"scope": "segments:read"},
         summary="Current members (as of the last refresh), with their entry time")
    async def members(self, db: Db, ctx: Ctx, segment_id: FromPath[str],
                      cursor: CursorParam = None,
                      limit: LimitParam = DEFAULT_LIMIT) -> Page[Member]:
        return await service.list_members(db, ctx, segment_id, cursor=cursor, limit=limit)


class HqSegmentController(Controller):
    path = "/v1/hq/segments"
    tags = ["hq: segments"]
    opt = {"hq": True}

    @post("/preview", opt={"scope": "segments:read"}, status_code=200,
          summary="Count a global definition in every tenant (aggregates only)")
    async def preview(self, db: Db, data: JSONBody[HqPreviewRequest]) -> HqPreview:
        return await hq_segments.preview_global(
            db, PreviewRequest(definition=data.definition, sample_size=0),
            tenant_ids=data.tenants)

    @post("/", opt={"scope": "segments:write"},
          summary="Create a global segment: it exists in every tenant")
    async def create(self, db: Db, hq: Hq, data: JSONBody[SegmentCreate]) -> Segment:
        return await hq_segments.create_global(db, hq, data)

    @get("/", opt={"scope": "segments:read"}, summary="Global segments")
    async def list_segments(self, db: Db, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT,
                   include_archived: FromQuery[bool] = False) -> Page[Segment]:
        return await hq_segments.list_global(db, cursor=cursor, limit=limit,
                                             include_archived=include_archived)

    @get("/{segment_id:str}", opt={"scope": "segments:read"}, summary="A global segment")
    async def get_segment(self, db: Db, segment_id: FromPath[str]) -> Segment:
        return await hq_segments.get_global(db, segment_id)

    @patch("/{segment_id:str}", opt={"scope": "segments:write"},
           summary="Change a global segment")
    async def update(self, db: Db, hq: Hq, segment_id: FromPath[str],
                     data: JSONBody[SegmentUpdate]) -> Segment:
        return await hq_segments.update_global(db, hq, segment_id, data)

    @delete("/{segment_id:str}", opt={"scope": "segments:write"}, status_code=200,
            summary="Archive a global segment")
    async def archive(self, db: Db, hq: Hq, segment_id: FromPath[str]) -> Segment:
        return await hq_segments.archive_global(db, hq, segment_id)

    @post("/{segment_id:str}/refresh", opt={"scope": "segments:write"}, status_code=202,
          summary="Refresh a global segment in every tenant (one queued job per tenant)")
    async def refresh(self, request: Request, db: Db,
                      segment_id: FromPath[str]) -> HqRefreshQueued:
        segment = await hq_segments.get_global(db, segment_id)
        tenants = await list_tenant_ids(db)
        queued = 0
        for tenant_id in tenants:
            job = await enqueue(request.app.state.arq, request.app.state.settings,
                                "refresh_segment_job", tenant_id=tenant_id,
                                key=f"{segment.id}:hq:{segment.updated_at.timestamp()}:"
                                    f"{request.scope['state'].get('request_id')}",
                                segment_id=segment.id)
            queued += job is not None
        return HqRefreshQueued(segment_id=segment.id, tenants=len(tenants), queued=queued)
