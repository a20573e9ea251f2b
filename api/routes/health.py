from __future__ import annotations

from litestar import Request, get
from litestar.response import Response

from core.errors import ServiceUnavailable


@get("/healthz", opt={"public": True}, tags=["ops"], summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", opt={"public": True}, tags=["ops"],
     summary="The database and Redis answer")
async def readyz(request: Request) -> Response[dict[str, str]]:
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        await state.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports any failure, it never raises
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    if any(v != "ok" for v in checks.values()):
        raise ServiceUnavailable("not ready", checks=checks)
    return Response({"status": "ready", **checks})


health_routes = [healthz, readyz]
