"""Durable storage behind the transparency log and the witnesses.

:class:`LogStorage` and :class:`WitnessStorage` are the interfaces; :class:`SQLiteLogStorage` and
:class:`SQLiteWitnessStorage` implement them on SQLite in WAL mode with ``synchronous=FULL``, so
every committed transaction is fsynced before the call returns. A PostgreSQL backend implements the
same protocols; the SQL below is plain SQL-92 except for the SQLite pragmas and ``?``
placeholders, which stay inside the SQLite classes.

The log stores each entry with its leaf hash, every completed perfect subtree (see
:mod:`flexheg.wire.merkle`) and every checkpoint it signed. Appending ``k`` entries writes about
``2k`` node rows; a proof reads at most ``2 * log2(size)`` node rows.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flexheg.errors import InputError
from flexheg.wire.merkle import NodeId

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredEntry:
    """One appended entry: its index, leaf hash and bytes."""

    index: int
    leaf_hash: bytes
    data: bytes


class LogStorage(Protocol):
    """Append-only storage of one Merkle log. Every write method is atomic and durable."""

    def origin(self) -> str | None: ...

    def set_origin(self, origin: str) -> None: ...

    def size(self) -> int: ...

    def append(
        self, entries: Sequence[StoredEntry], nodes: Sequence[tuple[NodeId, bytes]]
    ) -> None:
        """Store entries (indices continue the log) and the subtrees they complete, atomically."""
        ...

    def read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]: ...

    def entry(self, index: int) -> StoredEntry | None: ...

    def find(self, leaf_hash: bytes) -> int | None:
        """Return the lowest index of an entry with ``leaf_hash``, or None."""
        ...

    def entries(self, start: int, end: int) -> list[StoredEntry]: ...

    def find_many(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, list[StoredEntry]]:
        """Return the stored entries for each of ``leaf_hashes`` that is in the log."""
        ...

    def save_checkpoint(self, size: int, note: bytes) -> None:
        """Store (or replace, for added cosignatures) the checkpoint note of ``size``."""
        ...

    def checkpoint(self, size: int | None = None) -> bytes | None:
        """Return the checkpoint note of ``size``, or the newest one when ``size`` is None."""
        ...

    def close(self) -> None: ...


class WitnessStorage(Protocol):
    """Per-log state of a witness: the last checkpoint it cosigned."""

    def latest(self, origin: str) -> bytes | None: ...

    def replace(self, origin: str, old: bytes | None, new: bytes) -> bool:
        """Replace the stored checkpoint if it is still ``old``; return False if it changed."""
        ...

    def close(self) -> None: ...


def _connect(path: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
    except sqlite3.OperationalError as exc:
        raise InputError(f"{path}: cannot open the database: {exc}") from None
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    # A 64 MiB page cache keeps the leaf-hash index of about a million entries in memory; the
    # default 2 MiB cache rereads index pages from the file on every batch.
    connection.execute("PRAGMA cache_size=-65536")
    return connection


_QUERY_CHUNK = 500
"""Parameters per ``IN (...)`` query; SQLite allows at least 999 in every version."""

_LOG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS entries ("
    " idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entries_by_hash ON entries (leaf_hash)",
    "CREATE TABLE IF NOT EXISTS nodes ("
    " level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
    " PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL)",
)


class SQLiteLogStorage:
    """:class:`LogStorage` on one SQLite file. Safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db = _connect(path)
        with self._lock:
            for statement in _LOG_SCHEMA:
                self._db.execute(statement)
            row = self._db.execute("SELECT MAX(idx) FROM entries").fetchone()
            self._size = 0 if row[0] is None else int(row[0]) + 1
        logger.debug("opened log storage %s with %d entries", path, self._size)

    def origin(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = 'origin'").fetchone()
        return None if row is None else str(row[0])

    def set_origin(self, origin: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta (name, value) VALUES ('origin', ?)", (origin,))

    def size(self) -> int:
        return self._size

    def append(
        self, entries: Sequence[StoredEntry], nodes: Sequence[tuple[NodeId, bytes]]
    ) -> None:
        if not entries:
            return
        with self._lock:
            if entries[0].index != self._size:
                raise ValueError(
                    f"append at index {entries[0].index}, but the log has {self._size} entries"
                )
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO entries (idx, leaf_hash, data) VALUES (?, ?, ?)",
                    [(e.index, e.leaf_hash, e.data) for e in entries],
                )
                self._db.executemany(
                    "INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)",
                    [(level, index, value) for (level, index), value in nodes if level > 0],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._size += len(entries)

    def read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        leaves = [index for level, index in ids if level == 0]
        inner = [(level, index) for level, index in ids if level > 0]
        found: dict[NodeId, bytes] = {}
        with self._lock:
            if leaves:
                marks = ",".join("?" * len(leaves))
                rows = self._db.execute(
                    f"SELECT idx, leaf_hash FROM entries WHERE idx IN ({marks})",  # noqa: S608 - only placeholders
                    leaves,
                )
                found.update(((0, int(index)), bytes(value)) for index, value in rows)
            if inner:
                condition = " OR ".join(["(level = ? AND idx = ?)"] * len(inner))
                parameters = [number for node in inner for number in node]
                rows = self._db.execute(
                    f"SELECT level, idx, hash FROM nodes WHERE {condition}",  # noqa: S608 - only placeholders
                    parameters,
                )
                found.update(((int(level), int(index)), bytes(value)) for level, index, value in rows)
        return found

    def entry(self, index: int) -> StoredEntry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT idx, leaf_hash, data FROM entries WHERE idx = ?", (index,)
            ).fetchone()
        return None if row is None else StoredEntry(int(row[0]), bytes(row[1]), bytes(row[2]))

    def find(self, leaf_hash: bytes) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(idx) FROM entries WHERE leaf_hash = ?", (leaf_hash,)
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def find_many(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, list[StoredEntry]]:
        found: dict[bytes, list[StoredEntry]] = {}
        unique = list(dict.fromkeys(leaf_hashes))
        with self._lock:
            for start in range(0, len(unique), _QUERY_CHUNK):
                chunk = unique[start : start + _QUERY_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT idx, leaf_hash, data FROM entries WHERE leaf_hash IN ({marks})",  # noqa: S608 - only placeholders
                    chunk,
                )
                for index, hashed, data in rows:
                    stored = StoredEntry(int(index), bytes(hashed), bytes(data))
                    found.setdefault(stored.leaf_hash, []).append(stored)
        return found

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, leaf_hash, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, end),
            ).fetchall()
        return [StoredEntry(int(i), bytes(h), bytes(d)) for i, h, d in rows]

    def save_checkpoint(self, size: int, note: bytes) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM checkpoints WHERE size = ?", (size,))
                self._db.execute(
                    "INSERT INTO checkpoints (size, note) VALUES (?, ?)", (size, note)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def checkpoint(self, size: int | None = None) -> bytes | None:
        with self._lock:
            if size is None:
                row = self._db.execute(
                    "SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1"
                ).fetchone()
            else:
                row = self._db.execute(
                    "SELECT note FROM checkpoints WHERE size = ?", (size,)
                ).fetchone()
        return None if row is None else bytes(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SQLiteWitnessStorage:
    """:class:`WitnessStorage` on one SQLite file; a compare-and-swap per log origin."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = _connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS witnessed (origin TEXT PRIMARY KEY, note BLOB NOT NULL)"
        )

    def latest(self, origin: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT note FROM witnessed WHERE origin = ?", (origin,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def replace(self, origin: str, old: bytes | None, new: bytes) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT note FROM witnessed WHERE origin = ?", (origin,)
                ).fetchone()
                current = None if row is None else bytes(row[0])
                if current != old:
                    self._db.execute("ROLLBACK")
                    return False
                if current is None:
                    self._db.execute(
                        "INSERT INTO witnessed (origin, note) VALUES (?, ?)", (origin, new)
                    )
                else:
                    self._db.execute(
                        "UPDATE witnessed SET note = ? WHERE origin = ?", (new, origin)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def close(self) -> None:
        with self._lock:
            self._db.close()
