"""Running the Alembic migrations from code (the CLI, `up`, and the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

import migrations
from app.config import Settings


def alembic_config(database_url: str, settings: Settings | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    # A migration that converts sealed data reads the keys with these settings (else it
    # loads them from the environment).
    config.attributes["settings"] = settings
    return config


def upgrade(database_url: str, revision: str = "head", *, settings: Settings | None = None) -> None:
    command.upgrade(alembic_config(database_url, settings), revision)


def downgrade(database_url: str, revision: str, *, settings: Settings | None = None) -> None:
    command.downgrade(alembic_config(database_url, settings), revision)


def heads(database_url: str) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


def current(database_url: str) -> str | None:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
