from pathlib import Path

from piccolo.conf.apps import AppConfig

from migrations.sql import APP_NAME

APP_CONFIG = AppConfig(
    app_name=APP_NAME,
    migrations_folder_path=Path(__file__).parent / "versions",
)
