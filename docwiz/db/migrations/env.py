"""Alembic environment: runs on the connection DocWiz hands it."""

from __future__ import annotations

from alembic import context

import docwiz.db.all_models  # noqa: F401  (registers every table)
from docwiz.db.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `docwiz migrate`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
