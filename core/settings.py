"""Runtime settings, read once from the environment and passed around explicitly.

Nothing in Relais reads the environment after start-up: the CLI builds a `Settings`,
then hands it to the app factory, the worker and the services that need it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from core.errors import ConfigurationError


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Runtime role: owns nothing, no BYPASSRLS. Empty means "use the embedded server".
    database_url: str = ""
    # Owner role, used only to run migrations.
    migration_database_url: str = ""
    redis_url: str = ""
    data_dir: str = ".relais"
    # Signs tracking links, encrypts plugin secrets and keys the suppression list; must be
    # set in production and never changed.
    secret_key: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # API processes `relais serve` runs on the port (one per core serves most; on
    # Kubernetes keep one per pod and scale pods).
    api_workers: int = 1
    # Namespaces every Redis key (queue, rate limits), so several deployments or test
    # runs can share one Redis.
    redis_prefix: str = "relais"
    rate_limit_per_minute: int = 600
    # Public OAuth endpoints (no API key to count by): requests per minute per client_id the
    # request names, and per remote address; see core/oauth/limits.py for the budgets' shape.
    oauth_client_rate_limit_per_minute: int = 300
    oauth_address_rate_limit_per_minute: int = 600
    max_body_bytes: int = 1_048_576 + 65_536
    db_pool_min: int = 2
    db_pool_max: int = 10
    log_level: str = "INFO"
    public_url: str = ""
    audit_retention_days: int = 365
    # How long a verified API key / tenant row is trusted without a database read.
    auth_cache_seconds: int = 5

    @property
    def embedded(self) -> bool:
        return not self.database_url and not self.redis_url

    @property
    def queue_name(self) -> str:
        return f"{self.redis_prefix}:queue"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def with_changes(self, **changes: object) -> Settings:
        return msgspec.structs.replace(self, **changes)


_INT_FIELDS = {
    "port", "api_workers", "rate_limit_per_minute", "max_body_bytes", "db_pool_min", "db_pool_max",
    "audit_retention_days", "auth_cache_seconds", "oauth_client_rate_limit_per_minute",
    "oauth_address_rate_limit_per_minute",
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from `RELAIS_*` variables; unknown variables are ignored."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        raw = env.get(f"RELAIS_{field.name.upper()}")
        if raw is None:
            continue
        if field.name in _INT_FIELDS:
            try:
                values[field.name] = int(raw)
            except ValueError:
                raise ConfigurationError(
                    f"RELAIS_{field.name.upper()} must be an integer, got {raw!r}"
                ) from None
        else:
            values[field.name] = raw
    settings = Settings(**values)
    if bool(settings.database_url) != bool(settings.redis_url):
        raise ConfigurationError(
            "set both RELAIS_DATABASE_URL and RELAIS_REDIS_URL, or neither (embedded mode)"
        )
    return settings


def data_path(settings: Settings, *parts: str) -> Path:
    path = Path(settings.data_dir).expanduser().resolve().joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
