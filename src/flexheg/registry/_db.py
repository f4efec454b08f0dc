"""Engines, migrations and write transactions for SQLite and PostgreSQL.

SQLite is the embedded default. Its connections run in WAL mode with a busy timeout, and every
write transaction starts with ``BEGIN IMMEDIATE``, so that two writers never both read and then
fail to upgrade their lock; in one process a lock also queues writers before they reach SQLite.
On PostgreSQL, writers lock the rows they change with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from flexheg.errors import InputError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 60_000

_write_flag = threading.local()


def _normalise_url(url: str) -> str:
    """Map ``postgresql://`` URLs to the psycopg 3 driver, the one flexheg installs."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_registry_engine(url: str) -> Engine:
    """Create an engine for a registry database URL (``sqlite:///PATH`` or ``postgresql://...``)."""
    url = _normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(
            f"database URL {url!r} is invalid; use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, in_memory=parsed.database in (None, "", ":memory:"))
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise InputError(
        f"database backend {parsed.get_backend_name()!r} is not supported; use SQLite or PostgreSQL"
    )


def _sqlite_engine(url: str, *, in_memory: bool) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if in_memory:
        # One shared connection, or every pooled connection would see its own empty database.
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event below issue BEGIN instead of the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = getattr(_write_flag, "active", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def upgrade(engine: Engine) -> None:
    """Bring the schema of ``engine``'s database to the newest migration."""
    config = Config()
    location = resources.files("flexheg.registry") / "migrations"
    config.set_main_option("script_location", str(location))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.debug("registry schema upgraded to head on %s", engine.url.render_as_string())


class Database:
    """An engine, its session factory and the write lock of this process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._lock = threading.RLock() if engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Yield a session for reading; it is rolled back at the end."""
        with self.sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """Yield a session whose work commits at the end, or rolls back on an exception."""
        if self._lock is None:
            with self.sessions.begin() as session:
                yield session
            return
        with self._lock:
            _write_flag.active = True
            try:
                with self.sessions.begin() as session:
                    yield session
            finally:
                _write_flag.active = False

    def close(self) -> None:
        self.engine.dispose()
