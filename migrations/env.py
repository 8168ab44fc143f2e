"""Alembic environment: the URL comes from the caller (app.migrate) or CR_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from app.db import private_sqlite_file
from app.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from app.config import load_settings

        url = load_settings().database_url
    return url


def _render_as_batch(url: str) -> bool:
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    return url.startswith("sqlite")


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_render_as_batch(url),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection, url)
        return
    if url.startswith("sqlite"):
        private_sqlite_file(url)  # 0600, not the umask's 0644
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection, url)
    engine.dispose()


def _run(connection, url: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=_render_as_batch(url),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
