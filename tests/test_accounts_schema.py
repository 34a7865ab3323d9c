"""The 0002_accounts migration builds exactly the tables the models describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import docwiz.db.all_models  # noqa: F401  (registers every table)
from docwiz.db import migrate
from docwiz.db.base import Base
from docwiz.db.session import Database

ACCOUNT_TABLES = {
    "revoked_tokens",
    "patient_profiles",
    "patient_profile_versions",
    "audit_events",
}


def _table_of(diff: Any) -> str | None:
    """The table an autogenerate difference is about, whatever its shape."""
    if isinstance(diff, list):  # column modifications come as a list of tuples
        diff = diff[0]
    for part in diff[1:]:
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        if isinstance(part, str) and part in ACCOUNT_TABLES:
            return part
        if name in ACCOUNT_TABLES:
            return str(name)
    return None


async def differences(database: Database) -> list[Any]:
    def compare(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": True}
        )
        return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as conn:
        return await conn.run_sync(compare)


async def test_the_migration_matches_the_models_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}")
    try:
        await migrate.upgrade(database)
        found = await differences(database)
    finally:
        await database.dispose()

    ours = [diff for diff in found if _table_of(diff) in ACCOUNT_TABLES]
    assert ours == []


async def test_the_migration_downgrades_cleanly(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'down.db'}")
    try:
        await migrate.upgrade(database, "0002_accounts")
        await downgrade(database, "0001_users")
        revision = await migrate.current_revision(database)
        tables = await database_tables(database)
    finally:
        await database.dispose()

    assert revision == "0001_users"
    assert not tables & ACCOUNT_TABLES


async def downgrade(database: Database, revision: str) -> None:
    def run(connection: Any) -> None:
        command.downgrade(migrate.alembic_config(connection), revision)

    async with database.engine.begin() as conn:
        await conn.run_sync(run)


async def database_tables(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
