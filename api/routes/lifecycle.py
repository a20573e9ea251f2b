from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from api.deps import Ctx, CursorParam, Db, LimitParam
from api.routes.overlays import overlay_controllers
from core.jobs.context import enqueue, job_id
from core.lifecycle import service
from core.lifecycle import summary as summaries
from core.lifecycle.model import KIND
from core.lifecycle.schemas import (
    EvaluateRequest,
    EvaluationQueued,
    HqEvaluationQueued,
    HqSummary,
    StageRun,
    TenantSummary,
)
from core.pagination import DEFAULT_LIMIT, Page
from tenants.service import list_tenant_ids

# The global lifecycle canvas: versions, pilots, propagation (HQ) and overlays (tenants),
# through the shared overlay mechanism.
HqCanvasController, TenantCanvasController = overlay_controllers(KIND, "canvas", "lifecycle")


class TenantStageController(Controller):
    path = "/v1/tenants/{tenant:str}/stages"
    tags = ["tenant: lifecycle"]

    @get("/summary", opt={"scope": "lifecycle:read"},
         summary="Customers per stage and per segment, canvas version, last run")
    async def summary(self, db: Db, ctx: Ctx) -> TenantSummary:
        return await summaries.tenant_summary(db, ctx)

    @post("/evaluate", opt={"scope": "lifecycle:write"}, status_code=202,
          summary="Evaluate stages now (queued job; nightly and incremental runs are "
                  "scheduled)")
    async def evaluate(self, request: Request, db: Db, ctx: Ctx,
                       data: JSONBody[EvaluateRequest]) -> EvaluationQueued:
        # One queued evaluation per mode until a new run starts.
        key = f"{data.mode}:demand:{await service.last_run_id(db, ctx)}"
        job = await enqueue(request.app.state.arq, request.app.state.settings,
                            "evaluate_lifecycle", tenant_id=ctx.tenant_id, key=key,
                            mode=data.mode)
        queued_id = job_id(request.app.state.settings, "evaluate_lifecycle", ctx.tenant_id, key)
        return EvaluationQueued(job_id=queued_id, queued=job is not None, mode=data.mode)

    @get("/runs", opt={"scope": "lifecycle:read"}, summary="Evaluation runs, newest first")
    async def runs(self, db: Db, ctx: Ctx, cursor: CursorParam = None,
                   limit: LimitParam = DEFAULT_LIMIT) -> Page[StageRun]:
        return await service.list_runs(db, ctx, cursor=cursor, limit=limit)


class HqStageController(Controller):
    path = "/v1/hq/stages"
    tags = ["hq: lifecycle"]
    opt = {"hq": True}

    @get("/summary", opt={"scope": "lifecycle:read"},
         summary="Customers per stage and per global segment across tenants (aggregates)")
    async def summary(self, db: Db) -> HqSummary:
        return await summaries.hq_summary(db)

    @post("/evaluate", opt={"scope": "lifecycle:write"}, status_code=202,
          summary="Evaluate stages in every tenant now, e.g. after a propagation")
    async def evaluate(self, request: Request, db: Db,
                       data: JSONBody[EvaluateRequest]) -> HqEvaluationQueued:
        tenants = await list_tenant_ids(db)
        key = f"{data.mode}:hq:{request.scope['state'].get('request_id')}"
        queued = 0
        for tenant_id in tenants:
            job = await enqueue(request.app.state.arq, request.app.state.settings,
                                "evaluate_lifecycle", tenant_id=tenant_id, key=key,
                                mode=data.mode)
            queued += job is not None
        return HqEvaluationQueued(mode=data.mode, tenants=len(tenants), queued=queued)
