"""Alembic, driven from code: each subgraph keeps its revisions in `<subgraph>/migrations`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from subgraphs.common.database import ensure_database
from subgraphs.common.settings import ServiceSettings


def alembic_config(settings: ServiceSettings, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # `%` would be read as interpolation by configparser (passwords may contain it).
    config.set_main_option("sqlalchemy.url", settings.database_dsn.replace("%", "%%"))
    return config


def upgrade(settings: ServiceSettings, migrations_dir: Path, revision: str = "head") -> bool:
    """Create the database when missing, then migrate it; True when the database was new."""
    created = asyncio.run(ensure_database(settings.database_dsn))
    command.upgrade(alembic_config(settings, migrations_dir), revision)
    return created


def make_revision(settings: ServiceSettings, migrations_dir: Path, message: str) -> None:
    asyncio.run(ensure_database(settings.database_dsn))
    config = alembic_config(settings, migrations_dir)
    command.upgrade(config, "head")
    # Sequential ids ("0002") read better in a folder listing than random hex.
    existing = list((migrations_dir / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    command.revision(config, message=message, autogenerate=True, rev_id=f"{len(existing) + 1:04d}")


def run_env(metadata: MetaData) -> None:
    """Body of every subgraph's `migrations/env.py`."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run_online() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(run)
        await engine.dispose()

    asyncio.run(run_online())
