"""Alembic environment of the registry schema.

The registry runs migrations programmatically (see :func:`flexheg.registry._db.upgrade`), which
passes an open connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from flexheg.registry._models import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the registry migrations run only through flexheg.registry.open_registry")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
