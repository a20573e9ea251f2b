"""Run the migrations against a database, as the owner role."""

from __future__ import annotations

import contextlib
import io
import os

from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.apps.migrations.tables import Migration
from piccolo.engine.postgres import PostgresEngine

import migrations.piccolo_conf as piccolo_conf
from core.errors import ConfigurationError
from migrations.sql import APP_NAME

_CONF_MODULE = "migrations.piccolo_conf"


async def migrate(owner_dsn: str, *, verbose: bool = False) -> list[str]:
    """Apply pending migrations; returns the ids applied (empty when up to date)."""
    engine = PostgresEngine(config={"dsn": owner_dsn}, log_queries=False)
    # Piccolo finds its engine through the conf module; point both the module and the
    # bookkeeping table at this run's engine, so one process can migrate several
    # databases (the test suite does).
    os.environ["PICCOLO_CONF"] = _CONF_MODULE
    previous = piccolo_conf.DB
    piccolo_conf.DB = engine
    Migration._meta.db = engine
    try:
        before = set(await _applied())
        output = io.StringIO()
        with contextlib.redirect_stdout(output):  # piccolo prints progress with emoji
            result = await run_forwards(app_name=APP_NAME)
        if verbose:
            print(output.getvalue(), end="")
        if not result.success:
            raise ConfigurationError(f"migration failed: {result.message}")
        return sorted(set(await _applied()) - before)
    finally:
        piccolo_conf.DB = previous



async def _applied() -> list[str]:
    if not await Migration.table_exists().run():
        return []
    return await Migration.get_migrations_which_ran(app_name=APP_NAME)
