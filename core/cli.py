"""`relais`: run and administer the platform.

Every command builds its settings from RELAIS_* variables (see docs/operations.md); with
no database/Redis URL, it uses the embedded servers under RELAIS_DATA_DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from core.errors import RelaisError
from core.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], Any]


def _run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _with_db(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from core.db import Database
    from core.runtime import resolve

    runtime = await resolve(settings)
    db = await Database.connect(runtime.settings)
    try:
        return await work(db)
    finally:
        await db.close()


def _print_json(value: Any) -> None:
    print(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


# -- running ---------------------------------------------------------------------------

async def _prepare(settings: Settings, *, demo: bool) -> tuple[Any, list[str]]:
    """Resolve services, migrate, bootstrap the first HQ key; returns (runtime, lines)."""
    from core.auth import service as keys
    from core.auth.schemas import ApiKeyCreate
    from core.db import Database
    from core.demo import load_demo
    from core.runtime import resolve
    from migrations.runner import migrate
    from tenants.context import HqContext

    runtime = await resolve(settings)
    lines: list[str] = []
    if runtime.settings.migration_database_url:
        applied = await migrate(runtime.settings.migration_database_url)
        if applied:
            lines.append(f"applied {len(applied)} migration(s)")
    db = await Database.connect(runtime.settings)
    try:
        if await keys.count_hq_keys(db) == 0:
            created = await keys.create_hq_key(
                db, HqContext(), ApiKeyCreate(name="bootstrap HQ admin", scopes=["admin"]))
            lines.append(f"HQ admin key (shown once, keep it): {created.key}")
        if demo:
            for demo_key in await load_demo(db):
                lines.append(f"demo tenant {demo_key.tenant_id} admin key: {demo_key.key}")
    finally:
        await db.close()
    return runtime, lines


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from core.runtime import environment_for

    settings = settings.with_changes(host=args.host or settings.host,
                                     port=args.port or settings.port,
                                     api_workers=args.api_workers or settings.api_workers)
    runtime, lines = _run(_prepare(settings, demo=args.demo))
    env = environment_for(runtime.settings)
    children = [
        subprocess.Popen([sys.executable, "-m", "core.cli", "serve"], env=env),
        subprocess.Popen([sys.executable, "-m", "core.cli", "worker"], env=env),
    ]
    base = runtime.settings.base_url
    print(f"Relais is up\n  API      {base}/v1\n  OpenAPI  {base}/schema/openapi.json"
          f"  (browse: {base}/schema)\n  data     {runtime.settings.data_dir}", flush=True)
    for line in lines:
        print(f"  {line}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        if any(child.poll() is not None for child in children):
            exit_code = 1
            print("relais: error: a child process exited; stopping", file=sys.stderr)
            break
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    runtime.stop()
    print("Relais stopped.", flush=True)
    return exit_code


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app
    from core.logging import configure_logging
    from core.runtime import environment_for, resolve, settle_heap

    configure_logging(settings.log_level)
    runtime = _run(resolve(settings.with_changes(host=args.host or settings.host,
                                                 port=args.port or settings.port)))
    resolved = runtime.settings
    workers = args.workers or resolved.api_workers
    if workers < 1:
        raise RelaisError("--workers / RELAIS_API_WORKERS must be at least 1")
    options: dict[str, Any] = {"host": resolved.host, "port": resolved.port,
                               "log_config": None, "access_log": False, "lifespan": "on"}
    if workers > 1:
        # Each process builds its app from the environment (the resolved settings, embedded
        # servers' URLs included): uvicorn's supervisor starts and stops them.
        os.environ.update(environment_for(resolved))
        uvicorn.run("api.app:app_from_environment", factory=True, workers=workers, **options)
        return 0
    app = create_app(resolved)
    settle_heap()
    uvicorn.run(app, **options)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from core.jobs.worker import build_worker
    from core.logging import configure_logging
    from core.runtime import resolve, settle_heap

    configure_logging(settings.log_level)
    runtime = _run(resolve(settings))
    asyncio.set_event_loop(asyncio.new_event_loop())
    worker = build_worker(runtime.settings, burst=args.burst)
    settle_heap()
    worker.run()
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from core.runtime import resolve
    from migrations.runner import migrate

    async def run() -> list[str]:
        runtime = await resolve(settings)
        if not runtime.settings.migration_database_url:
            raise RelaisError("set RELAIS_MIGRATION_DATABASE_URL (the owner role) to migrate")
        return await migrate(runtime.settings.migration_database_url)

    applied = _run(run())
    print(f"applied {len(applied)} migration(s)" if applied else "database is up to date")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    _, lines = _run(_prepare(settings, demo=True))
    print("\n".join(lines) or "demo data already loaded")
    return 0


# -- administration --------------------------------------------------------------------

def cmd_tenants(args: argparse.Namespace, settings: Settings) -> int:
    from tenants import service
    from tenants.context import HqContext
    from tenants.schemas import TenantCreate

    hq = HqContext()

    async def work(db: Any) -> Any:
        if args.action == "create":
            data = msgspec.convert(
                {"id": args.id, "name": args.name, "country": args.country,
                 "timezone": args.timezone, "default_locale": args.locale,
                 "locales": args.locales or []}, TenantCreate)
            return await service.create_tenant(db, hq, data)
        if args.action == "list":
            return (await service.list_tenants(db, cursor=None, limit=500)).items
        status = "suspended" if args.action == "suspend" else "active"
        return await service.set_status(db, hq, args.id, status)

    _print_json(_run(_with_db(settings, work)))
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from core.auth import service
    from core.auth.schemas import ApiKeyCreate
    from tenants.context import HqContext
    from tenants.service import tenant_context

    hq = HqContext()

    async def work(db: Any) -> Any:
        ctx = None if args.hq else await tenant_context(db, args.tenant, hq.actor)
        if args.action == "create":
            expires = datetime.fromisoformat(args.expires_at) if args.expires_at else None
            data = ApiKeyCreate(name=args.name, scopes=args.scopes.split(","),
                                expires_at=expires)
            return (await service.create_hq_key(db, hq, data) if ctx is None
                    else await service.create_tenant_key(db, ctx, data))
        return (await service.revoke_hq_key(db, hq, args.id) if ctx is None
                else await service.revoke_tenant_key(db, ctx, args.id))

    _print_json(_run(_with_db(settings, work)))
    return 0


def cmd_plugins(args: argparse.Namespace, settings: Settings) -> int:
    """Installed plugins (built-ins and the `relais.plugins` entry points); no database."""
    from plugins.manager import load_plugins

    manager = load_plugins()
    if args.json:
        _print_json(manager.infos())
        return 0
    print(f"{'NAME':<18} {'KIND':<10} {'VERSION':<9} {'PACKAGE':<24} CONFIG FIELDS")
    for info in manager.infos():
        fields = ", ".join(info.config_schema.get("$defs", {}).get(
            info.config_schema.get("$ref", "").rpartition("/")[2], {}).get("properties", {}))
        print(f"{info.name:<18} {info.kind:<10} {info.version:<9} {info.package:<24} "
              f"{fields or '-'}")
    for registration in manager.registrations:
        for error in registration.errors:
            print(f"relais: warning: plugin {registration.name}: {error}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relais", description="Relais: multi-tenant customer-relationship platform.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start everything: database, Redis (embedded unless URLs "
                                   "are set), migrations, API and a worker")
    up.add_argument("--host", help="API listen address (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="API port (default 8000)")
    up.add_argument("--demo", action="store_true", help="load the demo group (HQ + 3 tenants)")
    up.add_argument("--api-workers", type=int,
                    help="API processes (default RELAIS_API_WORKERS, 1)")
    up.set_defaults(handler=cmd_up)

    serve = sub.add_parser("serve", help="run the API server only")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int,
                       help="API processes on the port (default RELAIS_API_WORKERS, 1)")
    serve.set_defaults(handler=cmd_serve)

    worker = sub.add_parser("worker", help="run a background job worker")
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.set_defaults(handler=cmd_worker)

    sub.add_parser("migrate", help="apply database migrations (owner role)").set_defaults(
        handler=cmd_migrate)
    sub.add_parser("demo", help="load the demo group").set_defaults(handler=cmd_demo)

    tenants = sub.add_parser("tenants", help="manage tenants (HQ)")
    tsub = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="create a tenant")
    create.add_argument("id", help="slug, e.g. lyon")
    create.add_argument("--name", required=True)
    create.add_argument("--country", required=True, help="ISO 3166-1 alpha-2, e.g. FR")
    create.add_argument("--timezone", required=True, help="IANA zone, e.g. Europe/Paris")
    create.add_argument("--locale", required=True, help="default BCP 47 locale, e.g. fr-FR")
    create.add_argument("--locales", nargs="*", help="other locales")
    tsub.add_parser("list", help="list tenants")
    for action in ("suspend", "reactivate"):
        p = tsub.add_parser(action, help=f"{action} a tenant")
        p.add_argument("id")
    tenants.set_defaults(handler=cmd_tenants)

    keys = sub.add_parser("keys", help="manage API keys")
    ksub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("create", "revoke"):
        p = ksub.add_parser(action, help=f"{action} an API key")
        owner = p.add_mutually_exclusive_group(required=True)
        owner.add_argument("--hq", action="store_true", help="an HQ key")
        owner.add_argument("--tenant", help="a key of this tenant")
        if action == "create":
            p.add_argument("--name", required=True)
            p.add_argument("--scopes", default="admin", help="comma-separated (default admin)")
            p.add_argument("--expires-at", help="ISO 8601 date-time with offset")
        else:
            p.add_argument("id", help="key id")
    keys.set_defaults(handler=cmd_keys)

    plugins = sub.add_parser("plugins", help="installed plugins (name, version, kind, schema)")
    plugins.add_argument("action", choices=["list"])
    plugins.add_argument("--json", action="store_true", help="full detail with config schemas")
    plugins.set_defaults(handler=cmd_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        return args.handler(args, settings) or 0
    except RelaisError as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"relais: error: {exc.detail}{where}", file=sys.stderr)
    except msgspec.ValidationError as exc:
        print(f"relais: error: {exc}", file=sys.stderr)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"relais: error: {type(exc).__name__}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
