"""The SQLite log layout: chunked entries, recomputed low subtrees, schema versions, upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexheg.errors import InputError
from flexheg.translog.log import MAX_ENTRY_SIZE, TransparencyLog
from flexheg.translog.storage import SQLiteLogStorage, upgrade_log_database
from flexheg.wire.merkle import (
    CompactRange,
    leaf_hash,
    leaf_hashes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

from .conftest import LOG_SIGNER

V1_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE entries (idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX entries_by_hash ON entries (leaf_hash)",
    "CREATE TABLE nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
    " PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL)",
)


def entries(count: int, start: int = 0) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(start, start + count)]


def write_v1_log(path: Path, data: list[bytes]) -> None:
    """Write a log in the version 1 layout: one row per entry and every subtree above level 0."""
    db = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        db.execute(statement)
    db.execute("INSERT INTO meta (name, value) VALUES ('origin', ?)", (LOG_SIGNER.name,))
    compact = CompactRange()
    for index, entry in enumerate(data):
        hashed = leaf_hash(entry)
        db.execute("INSERT INTO entries VALUES (?, ?, ?)", (index, hashed, entry))
        for (level, node), value in compact.append(hashed):
            if level > 0:
                db.execute("INSERT INTO nodes VALUES (?, ?, ?)", (level, node, value))
    db.execute("INSERT INTO checkpoints VALUES (?, ?)", (len(data), b"note"))
    db.commit()
    db.close()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=600),
    st.lists(st.integers(min_value=0, max_value=300), max_size=5),
    st.integers(min_value=0, max_value=9),
)
def test_extend_matches_append(start: int, batches: list[int], min_level: int) -> None:
    hashes = leaf_hashes(entries(start + sum(batches)))
    one_by_one = CompactRange()
    bulk = CompactRange()
    for hashed in hashes[:start]:
        one_by_one.append(hashed)
    bulk.extend(hashes[:start])
    position = start
    for count in batches:
        expected = [
            node
            for hashed in hashes[position : position + count]
            for node in one_by_one.append(hashed)
            if node[0][0] >= min_level
        ]
        assert sorted(bulk.extend(hashes[position : position + count], min_level=min_level)) == \
            sorted(expected)
        position += count
    assert bulk.size == one_by_one.size
    assert bulk.hashes() == one_by_one.hashes()
    assert bulk.root() == one_by_one.root()


def test_proofs_across_chunk_boundaries(tmp_path: Path) -> None:
    log = TransparencyLog(SQLiteLogStorage(tmp_path / "log.sqlite"), LOG_SIGNER)
    data = entries(1300)
    for start, count in ((0, 1), (1, 300), (301, 7), (308, 700), (1008, 292)):
        log.append(data[start : start + count])
    hashes = leaf_hashes(data)
    for size in (1, 255, 256, 257, 301, 512, 1000, 1300):
        root = log.root_hash(size)
        assert root == root_hash(hashes[:size])
        for index in {0, size // 2, size - 1}:
            verify_inclusion(hashes[index], index=index, size=size,
                             proof=log.inclusion_proof(index, size), root=root)
        for old in (1, 200, 256, size - 1):
            if 0 < old <= size:
                verify_consistency(old_size=old, new_size=size, old_root=log.root_hash(old),
                                   new_root=root, proof=log.consistency_proof(old, size))
    log.close()


def test_reopen_finds_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    first = TransparencyLog(SQLiteLogStorage(path), LOG_SIGNER)
    first.append(entries(600))
    first.close()
    second = TransparencyLog(SQLiteLogStorage(path), LOG_SIGNER)
    again = second.append([b"entry 599", b"entry 3", b"entry 600"])
    assert [(a.index, a.duplicate) for a in again] == [(599, True), (3, True), (600, False)]
    assert second.index_of(b"entry 256") == 256
    second.close()


def test_large_entries_split_chunks(tmp_path: Path) -> None:
    storage = SQLiteLogStorage(tmp_path / "log.sqlite")
    log = TransparencyLog(storage, LOG_SIGNER)
    big = [bytes([i]) * (MAX_ENTRY_SIZE // 2 + 1) for i in range(5)]
    log.append([b"small", *big, b"tail"])
    assert [e.data for e in storage.entries(0, 7)] == [b"small", *big, b"tail"]
    assert log.entry(3) == big[2]
    log.close()


def test_v1_database_rejected_on_open(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    write_v1_log(path, entries(10))
    with pytest.raises(InputError, match=r"schema version 1.*upgrade_log_database"):
        SQLiteLogStorage(path)


def test_unknown_version_rejected(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    SQLiteLogStorage(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '3' WHERE name = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(InputError, match="schema version 3"):
        SQLiteLogStorage(path)


def test_foreign_database_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(InputError, match="not a flexheg log"):
        SQLiteLogStorage(path)


def test_upgrade_keeps_entries_and_root(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    data = entries(700)
    write_v1_log(path, data)
    assert upgrade_log_database(path) == 700
    storage = SQLiteLogStorage(path)
    assert storage.checkpoint(700) == b"note"
    log = TransparencyLog(storage, LOG_SIGNER)
    assert log.size() == 700
    assert log.root_hash() == root_hash(leaf_hashes(data))
    assert log.append([b"entry 5"])[0].index == 5
    verify_inclusion(leaf_hash(data[300]), index=300, size=700,
                     proof=log.inclusion_proof(300, 700), root=log.root_hash(700))
    log.close()


def test_upgrade_rejects_current_version(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    SQLiteLogStorage(path).close()
    with pytest.raises(InputError, match="found version 2"):
        upgrade_log_database(path)
