"""The transparency log service: append entries, sign checkpoints, serve proofs and bundles.

Invariants:

* An append returns only after its entries and the subtrees they complete are committed and
  fsynced, so an acknowledged entry survives a crash of the process.
* Appends are idempotent by content: appending bytes already in the log returns their index, so a
  client can retry an append whose acknowledgement it lost.
* The log never rewrites an entry. A checkpoint is signed only over stored entries.

One process writes a log at a time; a second writer fails on the primary key of the next chunk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import overload

from flexheg.errors import InputError
from flexheg.translog.storage import LogStorage, StoredEntry
from flexheg.wire.checkpoint import (
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    LogBundle,
    NoteSignature,
    NoteSigner,
    sign_checkpoint,
)
from flexheg.wire.merkle import (
    CompactRange,
    NodeId,
    consistency_ranges,
    hash_ranges,
    inclusion_ranges,
    leaf_hash,
    leaf_hashes,
    range_nodes,
)

logger = logging.getLogger(__name__)

MAX_ENTRY_SIZE = 1 << 20
"""Largest entry in bytes that the log accepts."""


@dataclass(frozen=True, slots=True)
class Appended:
    """The index of an appended entry and whether it was already in the log."""

    index: int
    duplicate: bool


class _NewEntries(Sequence[Appended]):
    """The results of a batch of new entries ``[first, first + count)``, made on access."""

    def __init__(self, first: int, count: int) -> None:
        self._indices = range(first, first + count)

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, position: int) -> Appended: ...

    @overload
    def __getitem__(self, position: slice) -> list[Appended]: ...

    def __getitem__(self, position: int | slice) -> Appended | list[Appended]:
        if isinstance(position, slice):
            return [Appended(index, duplicate=False) for index in self._indices[position]]
        return Appended(self._indices[position], duplicate=False)

    def __iter__(self) -> Iterator[Appended]:
        return map(Appended, self._indices, repeat(False))


class TransparencyLog:
    """An append-only RFC 9162 Merkle log with signed C2SP checkpoints."""

    def __init__(self, storage: LogStorage, signer: NoteSigner) -> None:
        origin = storage.origin()
        if origin is None:
            storage.set_origin(signer.name)
        elif origin != signer.name:
            raise InputError(
                f"the log storage belongs to log {origin!r}, but the key is named {signer.name!r}; "
                "open it with the key it was created with"
            )
        self._storage = storage
        self._signer = signer
        self._lock = threading.Lock()
        self._compact = self._load_compact_range()
        logger.info("opened log %s with %d entries", signer.name, self._compact.size)

    def _load_compact_range(self) -> CompactRange:
        size = self._storage.size()
        ids = range_nodes(0, size) if size else []
        stored = self._storage.read_nodes(ids)
        return CompactRange(size, [stored[node] for node in ids])

    @property
    def origin(self) -> str:
        return self._signer.name

    @property
    def storage(self) -> LogStorage:
        return self._storage

    def size(self) -> int:
        return self._compact.size

    def root_hash(self, size: int | None = None) -> bytes:
        """Return the root hash of the tree of ``size`` entries (default: all entries)."""
        current = self.size()
        size = current if size is None else size
        if not 0 <= size <= current:
            raise InputError(f"tree size {size} is outside 0..{current}")
        if size == current:
            return self._compact.root()
        if size == 0:
            return CompactRange().root()
        return hash_ranges([(0, size)], self._read_nodes)[0]

    def _read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return self._storage.read_nodes(ids)

    # Writing.

    def append(self, entries: Sequence[bytes]) -> Sequence[Appended]:
        """Append entries durably; return each one's index. Duplicates keep their first index."""
        for position, entry in enumerate(entries):
            if len(entry) > MAX_ENTRY_SIZE:
                raise InputError(
                    f"entry {position} is {len(entry)} bytes; the limit is {MAX_ENTRY_SIZE}"
                )
        with self._lock:
            hashes = leaf_hashes(entries)
            stored = self._storage.find_many(hashes)
            first = self._compact.size
            if not stored and len(set(hashes)) == len(hashes):
                new_entries, new_hashes = entries, hashes
                results: Sequence[Appended] = _NewEntries(first, len(entries))
            else:
                new_entries, new_hashes, results = self._split_duplicates(entries, hashes, stored)
            compact = self._compact.copy()
            nodes = compact.extend(new_hashes, min_level=self._storage.node_min_level)
            self._storage.append(first, new_entries, new_hashes, nodes)
            self._compact = compact
        if new_entries:
            logger.debug(
                "appended %d entries to %s; size %d", len(new_entries), self.origin, compact.size
            )
        return results

    def _split_duplicates(
        self,
        entries: Sequence[bytes],
        hashes: Sequence[bytes],
        stored: Mapping[bytes, Sequence[StoredEntry]],
    ) -> tuple[list[bytes], list[bytes], list[Appended]]:
        """Give each entry its index, the first one for repeated bytes; return the new ones."""
        new_entries: list[bytes] = []
        new_hashes: list[bytes] = []
        results: list[Appended] = []
        batch_index: dict[bytes, int] = {}
        for entry, hashed in zip(entries, hashes, strict=True):
            existing = batch_index.get(hashed)
            if existing is None:
                existing = next((s.index for s in stored.get(hashed, ()) if s.data == entry), None)
            if existing is not None:
                results.append(Appended(existing, duplicate=True))
                continue
            index = self._compact.size + len(new_entries)
            new_entries.append(entry)
            new_hashes.append(hashed)
            batch_index[hashed] = index
            results.append(Appended(index, duplicate=False))
        return new_entries, new_hashes, results

    def _find_stored(self, hashed: bytes, entry: bytes) -> int | None:
        index = self._storage.find(hashed)
        if index is None:
            return None
        stored = self._storage.entry(index)
        return index if stored is not None and stored.data == entry else None

    def sign_checkpoint(self) -> Checkpoint:
        """Sign and store a checkpoint of the current tree; return it."""
        with self._lock:
            size = self._compact.size
            checkpoint = sign_checkpoint(self._signer, size=size, root_hash=self._compact.root())
            existing = self._storage.checkpoint(size)
            if existing is not None:
                stored = Checkpoint.parse(existing)
                if stored.root_hash == checkpoint.root_hash:
                    return stored
            self._storage.save_checkpoint(size, checkpoint.to_bytes())
        logger.info("signed checkpoint %s@%d", self.origin, size)
        return checkpoint

    def add_cosignatures(self, size: int, cosignatures: Sequence[NoteSignature]) -> Checkpoint:
        """Attach witness cosignatures to the stored checkpoint of ``size``; return it."""
        with self._lock:
            stored = self.checkpoint(size)
            known = {s.line() for s in stored.signed_note().signatures}
            extra = [c for c in cosignatures if c.line() not in known]
            updated = stored.with_signatures(extra)
            self._storage.save_checkpoint(size, updated.to_bytes())
        return updated

    # Reading.

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        """Return the stored checkpoint of ``size`` (default: the newest one)."""
        note = self._storage.checkpoint(size)
        if note is None:
            what = "any checkpoint" if size is None else f"a checkpoint of size {size}"
            raise InputError(f"log {self.origin} has not signed {what}; sign one first")
        return Checkpoint.parse(note)

    def entry(self, index: int) -> bytes:
        stored = self._storage.entry(index)
        if stored is None:
            raise InputError(f"log {self.origin} has no entry {index}; it has {self.size()}")
        return stored.data

    def index_of(self, entry: bytes) -> int:
        """Return the index of ``entry``; raise InputError if it was never appended."""
        index = self._find_stored(leaf_hash(entry), entry)
        if index is None:
            raise InputError(f"the entry {leaf_hash(entry).hex()[:16]}... is not in log {self.origin}")
        return index

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size() if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise InputError(f"entry index {index} is outside the tree of size {size}")
        return hash_ranges(inclusion_ranges(index, size), self._read_nodes)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self.size() if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise InputError(f"old size {old_size} is outside 0..{new_size}")
        return hash_ranges(consistency_ranges(old_size, new_size), self._read_nodes)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size():
            raise InputError(f"tree size {size} is outside 0..{self.size()} of log {self.origin}")

    def bundle(
        self, entries: Sequence[bytes], *, newest_seen_size: int | None, size: int | None = None
    ) -> LogBundle:
        """Build the proof bundle a device needs for ``entries``.

        The bundle's checkpoint is the stored one of ``size`` (default: the newest stored one). Its
        consistency proof connects it with ``newest_seen_size``, the tree size of the newest
        checkpoint the device has stored (None for a device that has seen none).
        """
        checkpoint = self.checkpoint(size)
        indices = [self.index_of(entry) for entry in entries]
        for position, index in enumerate(indices):
            if index >= checkpoint.size:
                raise InputError(
                    f"entry {position} (index {index}) is not under checkpoint size "
                    f"{checkpoint.size}; sign a new checkpoint first"
                )
        inclusion = tuple(
            InclusionProof(index, tuple(self.inclusion_proof(index, checkpoint.size)))
            for index in indices
        )
        consistency = None
        if newest_seen_size is not None and newest_seen_size != checkpoint.size:
            old, new = sorted((newest_seen_size, checkpoint.size))
            consistency = ConsistencyProof(old, new, tuple(self.consistency_proof(old, new)))
        return LogBundle(checkpoint, inclusion, consistency)

    def close(self) -> None:
        self._storage.close()
