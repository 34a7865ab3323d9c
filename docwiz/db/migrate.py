"""Alembic migrations, run programmatically against the service's engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from docwiz.db.session import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def upgrade(database: Database, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` in one transaction."""

    def run(sync_connection: Any) -> None:
        command.upgrade(alembic_config(sync_connection), revision)

    async with database.engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(database: Database) -> str | None:
    def read(sync_connection: Any) -> str | None:
        return MigrationContext.configure(sync_connection).get_current_revision()

    async with database.engine.connect() as conn:
        return await conn.run_sync(read)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
