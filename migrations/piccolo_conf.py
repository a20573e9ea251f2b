"""Piccolo's configuration module. `DB` is assigned by `migrations.runner.migrate` for the
duration of a run, from the URL it was given (piccolo looks its engine up here)."""

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

DB: PostgresEngine | None = None
APP_REGISTRY = AppRegistry(apps=["migrations.piccolo_app"])
