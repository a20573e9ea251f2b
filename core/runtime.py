"""Turn settings into reachable services: the given URLs, or the embedded servers."""

from __future__ import annotations

import gc
import os
import secrets
from dataclasses import dataclass, field

import msgspec

from core import embedded
from core.bootstrap import ensure_database
from core.errors import ConfigurationError
from core.settings import Settings, data_path


@dataclass
class Runtime:
    settings: Settings
    embedded_redis: embedded.EmbeddedRedis | None = None
    handles: list[object] = field(default_factory=list)

    def stop(self) -> None:
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


def _embedded_secret(settings: Settings) -> str:
    path = data_path(settings, "secret_key")
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        os.chmod(path, 0o600)
    return path.read_text().strip()


async def resolve(settings: Settings) -> Runtime:
    if not settings.embedded:
        if not settings.secret_key:
            raise ConfigurationError("RELAIS_SECRET_KEY must be set outside embedded mode")
        return Runtime(settings)
    server = embedded.start_postgres(data_path(settings, "pg"))
    redis = embedded.start_redis(data_path(settings, "redis", "x").parent)
    owner_dsn, app_dsn = await ensure_database(embedded.superuser_dsn(server),
                                               embedded.DATABASE_NAME)
    resolved = settings.with_changes(
        database_url=app_dsn,
        migration_database_url=owner_dsn,
        redis_url=redis.url,
        secret_key=settings.secret_key or _embedded_secret(settings),
    )
    return Runtime(resolved, embedded_redis=redis, handles=[server])


def environment_for(settings: Settings) -> dict[str, str]:
    """The resolved settings as RELAIS_* variables, for the processes `relais up` starts."""
    env = dict(os.environ)
    for setting in msgspec.structs.fields(Settings):  # every setting: none is forgotten
        value = getattr(settings, setting.name)
        if value not in ("", None):
            env[f"RELAIS_{setting.name.upper()}"] = str(value)
    return env


# Collections of the youngest generation, per allocations: the default (700) makes a busy
# request or batch loop run the cyclic collector thousands of times a second over objects
# that die young anyway (rows, msgspec values, dicts are freed by reference counting).
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """For long-running processes (API, worker), once start-up is done: move what start-up
    built (modules, app, plugin manager) out of the cyclic collector's sight for good
    (`gc.freeze`) and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
