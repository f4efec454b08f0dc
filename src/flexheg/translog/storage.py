"""Durable storage behind the transparency log and the witnesses.

:class:`LogStorage` and :class:`WitnessStorage` are the interfaces; :class:`SQLiteLogStorage` and
:class:`SQLiteWitnessStorage` implement them on SQLite in WAL mode with ``synchronous=FULL``, so
every committed transaction is fsynced before the call returns. A PostgreSQL backend implements the
same protocols; the SQL below is plain SQL-92 except for the SQLite pragmas and ``?``
placeholders, which stay inside the SQLite classes.

The SQLite log (schema version 2) stores entries in *chunks*: one row holds up to 256 consecutive
entries, their leaf hashes and their end offsets, packed into three blobs. It stores the perfect
subtrees (see :mod:`flexheg.wire.merkle`) from level 8 upwards and recomputes lower ones from the
leaf hashes of at most one 256-entry range, and it stores every checkpoint it signed. Appending
``k`` entries writes about ``k / 256`` chunk rows and ``k / 256`` node rows in one transaction.

The leaf-hash index, which finds an entry by its content, lives in memory and is rebuilt from the
stored leaf hashes when the file is opened. It maps the first 8 bytes of each leaf hash to the
entry's index, so it takes 16 bytes per entry. Every match is confirmed against the full leaf hash.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from flexheg.errors import InputError
from flexheg.wire.merkle import HASH_SIZE, CompactRange, NodeId, leaf_hashes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredEntry:
    """One appended entry: its index, leaf hash and bytes."""

    index: int
    leaf_hash: bytes
    data: bytes


class LogStorage(Protocol):
    """Append-only storage of one Merkle log. Every write method is atomic and durable."""

    @property
    def node_min_level(self) -> int:
        """Lowest level of the perfect subtrees that :meth:`append` must receive.

        The storage recomputes subtrees below this level from leaf hashes in :meth:`read_nodes`.
        """
        ...

    def origin(self) -> str | None: ...

    def set_origin(self, origin: str) -> None: ...

    def size(self) -> int: ...

    def append(
        self,
        first_index: int,
        entries: Sequence[bytes],
        hashes: Sequence[bytes],
        nodes: Sequence[tuple[NodeId, bytes]],
    ) -> None:
        """Store entries from ``first_index`` on with their leaf hashes, and the subtrees they
        complete at :attr:`node_min_level` or above, in one durable transaction."""
        ...

    def read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Return the hash of each requested perfect subtree that lies inside the log."""
        ...

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
    connection.execute("PRAGMA cache_size=-65536")
    return connection


SCHEMA_VERSION = 2
"""Version of the SQLite log layout that :class:`SQLiteLogStorage` reads and writes."""

_NODE_MIN_LEVEL = 8
"""Lowest stored subtree level; a lower subtree is a fold of at most 128 stored leaf hashes."""

_CHUNK_ENTRIES = 1 << _NODE_MIN_LEVEL
"""Most entries in one chunk row. Range reads rely on no chunk being longer."""

_CHUNK_BYTES = 1 << 20
"""Entry bytes after which a chunk is closed; a chunk holds at most this plus one entry."""

_LOG_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE entry_chunks ("
    " first INTEGER PRIMARY KEY, count INTEGER NOT NULL, leaf_hashes BLOB NOT NULL,"
    " ends BLOB NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE nodes ("
    " level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
    " PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL)",
)

_V1_TABLES = frozenset({"meta", "entries", "nodes", "checkpoints"})
"""Tables of schema version 1, which stored one row per entry and had no version row."""


@dataclass(frozen=True)
class _Chunk:
    """A stored run of consecutive entries: ``count`` entries from index ``first``."""

    first: int
    count: int
    hashes: bytes
    ends: array[int]
    data: bytes

    def entry(self, index: int) -> StoredEntry:
        position = index - self.first
        start = self.ends[position - 1] if position else 0
        end = self.ends[position]
        hashed = self.hashes[position * HASH_SIZE : (position + 1) * HASH_SIZE]
        return StoredEntry(index, hashed, self.data[start:end])


def _pack_ends(entries: Sequence[bytes]) -> array[int]:
    return array("Q", accumulate(map(len, entries)))


def _chunk_bounds(entries: Sequence[bytes]) -> Iterator[tuple[int, int]]:
    """Split positions ``[0, len(entries))`` into chunks of at most 256 entries and about 1 MiB."""
    start = 0
    while start < len(entries):
        end = min(start + _CHUNK_ENTRIES, len(entries))
        ends = _pack_ends(entries[start:end])
        if ends[-1] > _CHUNK_BYTES:
            # Keep entries up to the first one that crosses the limit; always keep at least one.
            end = start + next(i for i, total in enumerate(ends) if total > _CHUNK_BYTES) + 1
        yield start, end
        start = end


class _LeafIndex:
    """In-memory map from the first 8 bytes of a leaf hash to the indices of its entries.

    The map is a list of sorted runs (keys with the log index of each), merged like a binary
    counter so that there are at most about ``log2(size)`` runs. A batch lookup is one vectorized
    binary search per run.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]] = []

    @staticmethod
    def keys(hashes: bytes) -> npt.NDArray[np.uint64]:
        """Return the 8-byte prefix of each of the concatenated 32-byte ``hashes`` as an integer."""
        words = np.frombuffer(hashes, dtype=">u8").reshape(-1, HASH_SIZE // 8)
        return words[:, 0].astype(np.uint64)

    def add(self, hashes: bytes, first_index: int) -> None:
        """Add the concatenated leaf hashes of the entries from ``first_index`` on."""
        keys = self.keys(hashes)
        if not len(keys):
            return
        positions = np.arange(first_index, first_index + len(keys), dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        self._runs.append((keys[order], positions[order]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            newer_keys, newer_positions = self._runs.pop()
            older_keys, older_positions = self._runs.pop()
            keys = np.concatenate((older_keys, newer_keys))
            positions = np.concatenate((older_positions, newer_positions))
            order = np.argsort(keys, kind="stable")
            self._runs.append((keys[order], positions[order]))

    def candidates(self, hashes: Sequence[bytes]) -> list[tuple[int, int]]:
        """Return ``(position in hashes, log index)`` for every entry whose prefix matches."""
        if not hashes or not self._runs:
            return []
        keys = self.keys(b"".join(hashes))
        found: list[tuple[int, int]] = []
        for run_keys, run_positions in self._runs:
            low = np.searchsorted(run_keys, keys, side="left")
            high = np.searchsorted(run_keys, keys, side="right")
            for position in np.nonzero(high > low)[0].tolist():
                found.extend(
                    (position, int(run_positions[match]))
                    for match in range(int(low[position]), int(high[position]))
                )
        return found


class SQLiteLogStorage:
    """:class:`LogStorage` on one SQLite file. Safe to share between threads of one process.

    Raises:
        InputError: when the file holds another schema version; a version 1 file can be
            converted with :func:`upgrade_log_database`.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db = _connect(path)
        try:
            with self._lock:
                self._open_schema()
                self._size = self._stored_size()
                self._index = _LeafIndex()
                rows = self._db.execute("SELECT leaf_hashes FROM entry_chunks ORDER BY first")
                self._index.add(b"".join(bytes(hashes) for (hashes,) in rows), 0)
        except BaseException:
            self._db.close()
            raise
        logger.debug("opened log storage %s with %d entries", path, self._size)

    def _open_schema(self) -> None:
        tables = {
            str(name)
            for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables:
            self._db.execute("BEGIN IMMEDIATE")
            for statement in _LOG_SCHEMA:
                self._db.execute(statement)
            self._db.execute(
                "INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            self._db.execute("COMMIT")
            return
        version = _schema_version(self._db, tables)
        if version == 1:
            raise InputError(
                f"{self._path}: the log database has schema version 1, which stores one row per "
                f"entry; this version reads only schema version {SCHEMA_VERSION}. Convert it once "
                "with flexheg.translog.storage.upgrade_log_database(path)"
            )
        if version != SCHEMA_VERSION:
            raise InputError(
                f"{self._path}: the log database has schema version {version}, but this version "
                f"of flexheg reads only schema version {SCHEMA_VERSION}; open it with the flexheg "
                "release that wrote it"
            )

    def _stored_size(self) -> int:
        row = self._db.execute(
            "SELECT first + count FROM entry_chunks ORDER BY first DESC LIMIT 1"
        ).fetchone()
        return 0 if row is None else int(row[0])

    @property
    def node_min_level(self) -> int:
        return _NODE_MIN_LEVEL

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
        self,
        first_index: int,
        entries: Sequence[bytes],
        hashes: Sequence[bytes],
        nodes: Sequence[tuple[NodeId, bytes]],
    ) -> None:
        if len(entries) != len(hashes):
            raise ValueError(f"{len(entries)} entries but {len(hashes)} leaf hashes")
        if not entries:
            return
        packed = b"".join(hashes)
        rows = [
            (
                first_index + start,
                end - start,
                packed[start * HASH_SIZE : end * HASH_SIZE],
                _pack_ends(entries[start:end]).tobytes(),
                b"".join(entries[start:end]),
            )
            for start, end in _chunk_bounds(entries)
        ]
        with self._lock:
            if first_index != self._size:
                raise ValueError(
                    f"append at index {first_index}, but the log has {self._size} entries"
                )
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO entry_chunks (first, count, leaf_hashes, ends, data)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.executemany(
                    "INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)",
                    [
                        (level, index, value)
                        for (level, index), value in nodes
                        if level >= _NODE_MIN_LEVEL
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._size += len(entries)
            self._index.add(packed, first_index)

    def _chunks(self, start: int, end: int, *, data: bool = True) -> list[_Chunk]:
        """Return the chunks that hold entries ``[start, end)``, in order; call with the lock."""
        columns = "first, count, leaf_hashes, ends, data" if data else "first, count, leaf_hashes"
        rows = self._db.execute(
            f"SELECT {columns} FROM entry_chunks WHERE first > ? AND first < ? ORDER BY first",  # noqa: S608 - fixed column lists
            (start - _CHUNK_ENTRIES, end),
        )
        chunks = []
        for row in rows:
            first, count = int(row[0]), int(row[1])
            if first + count <= start:
                continue
            ends = array("Q", bytes(row[3])) if data else array("Q")
            chunks.append(_Chunk(first, count, bytes(row[2]), ends, bytes(row[4]) if data else b""))
        return chunks

    def _leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Return the leaf hashes of entries ``[start, end)``; call with the lock."""
        hashes: list[bytes] = []
        for chunk in self._chunks(start, end, data=False):
            low = max(start, chunk.first) - chunk.first
            high = min(end, chunk.first + chunk.count) - chunk.first
            hashes.extend(
                chunk.hashes[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(low, high)
            )
        return hashes

    def read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        low = [(level, index) for level, index in ids if level < _NODE_MIN_LEVEL]
        high = [(level, index) for level, index in ids if level >= _NODE_MIN_LEVEL]
        found: dict[NodeId, bytes] = {}
        with self._lock:
            found.update(self._low_nodes(low))
            if high:
                condition = " OR ".join(["(level = ? AND idx = ?)"] * len(high))
                parameters = [number for node in high for number in node]
                rows = self._db.execute(
                    f"SELECT level, idx, hash FROM nodes WHERE {condition}",  # noqa: S608 - only placeholders
                    parameters,
                )
                found.update(((int(level), int(index)), bytes(value)) for level, index, value in rows)
        return found

    def _low_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Recompute subtrees below the stored levels from leaf hashes; call with the lock."""
        spans = {node: (node[1] << node[0], (node[1] + 1) << node[0]) for node in ids}
        spans = {node: span for node, span in spans.items() if span[1] <= self._size}
        if not spans:
            return {}
        low = min(start for start, _ in spans.values())
        high = max(end for _, end in spans.values())
        # The nodes of one proof below level 8 lie in one or two 256-entry ranges, so one read
        # of the whole span is the common case.
        if high - low <= 4 * _CHUNK_ENTRIES:
            leaves = self._leaf_hashes(low, high)
            return {
                node: _perfect_subtree_hash(leaves[start - low : end - low])
                for node, (start, end) in spans.items()
            }
        return {
            node: _perfect_subtree_hash(self._leaf_hashes(start, end))
            for node, (start, end) in spans.items()
        }

    def entry(self, index: int) -> StoredEntry | None:
        if not 0 <= index < self._size:
            return None
        with self._lock:
            chunks = self._chunks(index, index + 1)
        return chunks[0].entry(index) if chunks else None

    def find(self, leaf_hash: bytes) -> int | None:
        matches = self.find_many([leaf_hash]).get(leaf_hash, [])
        return min((stored.index for stored in matches), default=None)

    def find_many(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, list[StoredEntry]]:
        found: dict[bytes, list[StoredEntry]] = {}
        with self._lock:
            candidates = self._index.candidates(leaf_hashes)
        for position, index in sorted(candidates, key=lambda candidate: candidate[1]):
            stored = self.entry(index)
            wanted = leaf_hashes[position]
            if stored is not None and stored.leaf_hash == wanted:
                matches = found.setdefault(wanted, [])
                if stored not in matches:
                    matches.append(stored)
        return found

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        start, end = max(start, 0), min(end, self._size)
        if start >= end:
            return []
        with self._lock:
            chunks = self._chunks(start, end)
        return [
            chunk.entry(index)
            for chunk in chunks
            for index in range(max(start, chunk.first), min(end, chunk.first + chunk.count))
        ]

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


def _perfect_subtree_hash(leaves: Sequence[bytes]) -> bytes:
    compact = CompactRange()
    compact.extend(leaves, min_level=len(leaves).bit_length())
    return compact.root()


def _schema_version(db: sqlite3.Connection, tables: set[str]) -> int:
    """Return the schema version of an existing log database.

    Raises:
        InputError: when the file is not a log database of any known version.
    """
    if "meta" in tables:
        row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if row is not None:
            return int(row[0])
        if "entries" in tables and tables <= _V1_TABLES:
            return 1
    raise InputError(
        f"the database has tables {sorted(tables)}, which are not a flexheg log; "
        "give the path of a log database or of a new file"
    )


def upgrade_log_database(path: Path) -> int:
    """Convert a schema version 1 log database to the current version in place; return its size.

    The conversion runs in one transaction, so a crash leaves the version 1 file unchanged.
    Entries, their order, the stored subtrees from level 8 up, the origin and every checkpoint
    are kept; the root hash is unchanged because the entries are.

    Raises:
        InputError: when the file is not a version 1 log database.
    """
    db = _connect(path)
    try:
        tables = {
            str(name)
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        version = _schema_version(db, tables) if tables else None
        if version != 1:
            raise InputError(
                f"{path}: expected a log database of schema version 1, found version {version}; "
                "only version 1 files need an upgrade"
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            size = _convert_from_v1(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.close()
    logger.info("upgraded log database %s with %d entries to schema version %d",
                path, size, SCHEMA_VERSION)
    return size


def _convert_from_v1(db: sqlite3.Connection) -> int:
    db.execute("ALTER TABLE nodes RENAME TO nodes_v1")
    db.execute("ALTER TABLE checkpoints RENAME TO checkpoints_v1")
    db.execute("ALTER TABLE meta RENAME TO meta_v1")
    for statement in _LOG_SCHEMA:
        db.execute(statement)
    db.execute("INSERT INTO meta (name, value) SELECT name, value FROM meta_v1")
    db.execute(
        "INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
    )
    db.execute("INSERT INTO checkpoints (size, note) SELECT size, note FROM checkpoints_v1")
    db.execute(
        "INSERT INTO nodes (level, idx, hash) SELECT level, idx, hash FROM nodes_v1"
        " WHERE level >= ?",
        (_NODE_MIN_LEVEL,),
    )

    size = 0
    while True:
        rows = db.execute(
            "SELECT idx, data FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?",
            (size, _CHUNK_ENTRIES * 64),
        ).fetchall()
        if not rows:
            break
        if int(rows[0][0]) != size or int(rows[-1][0]) != size + len(rows) - 1:
            raise InputError(f"the version 1 log has a gap in its entry indices after {size}")
        entries = [bytes(data) for _, data in rows]
        hashes = leaf_hashes(entries)
        packed = b"".join(hashes)
        db.executemany(
            "INSERT INTO entry_chunks (first, count, leaf_hashes, ends, data) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    size + start,
                    end - start,
                    packed[start * HASH_SIZE : end * HASH_SIZE],
                    _pack_ends(entries[start:end]).tobytes(),
                    b"".join(entries[start:end]),
                )
                for start, end in _chunk_bounds(entries)
            ],
        )
        size += len(entries)

    for table in ("entries", "nodes_v1", "checkpoints_v1", "meta_v1"):
        db.execute(f"DROP TABLE {table}")
    return size


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
