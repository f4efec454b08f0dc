"""RFC 9162 Merkle tree hashing, proof verification and proof construction.

Hashing follows RFC 9162, section 2.1.1: a leaf hash is ``SHA-256(0x00 || entry)`` and an interior
node hash is ``SHA-256(0x01 || left || right)``; the root of the empty tree is ``SHA-256("")``.

Verification (section 2.1.3.2 for inclusion, 2.1.4.2 for consistency) is pure and fails closed:
every malformed input (an index outside the tree, a hash that is not 32 bytes, a proof that is too
short or too long) raises :class:`~flexheg.errors.Rejected` with reason ``bad-proof``.

Proof construction works on *perfect subtrees*, identified by ``(level, index)``: the node at
``(level, index)`` covers the ``2**level`` leaves starting at ``index * 2**level``. A log stores
these nodes as it grows (:class:`CompactRange` yields each one when it completes), so any proof
element is a fold of at most ``log2(size)`` stored nodes and a whole proof needs O(log n) reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat

from flexheg.errors import Reason, Rejected

HASH_SIZE = 32
"""Length in bytes of every leaf, node and root hash."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the tree with no entries."""

NodeId = tuple[int, int]
"""A perfect subtree ``(level, index)``, covering leaves ``[index << level, (index + 1) << level)``."""

NodeReader = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]
"""Reads the stored hashes of perfect subtrees, returning one entry per requested node."""


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash of ``entry``."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 hash of an interior node from its two children's hashes."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """Return the RFC 9162 leaf hash of each entry; the same as :func:`leaf_hash`, in one loop."""
    sha256 = hashlib.sha256
    return [sha256(b"\x00" + entry).digest() for entry in entries]


def _parent_hashes(row: Sequence[bytes]) -> list[bytes]:
    """Hash the pairs ``row[0], row[1]``, ``row[2], row[3]``, ...; an odd last hash is left out."""
    sha256 = hashlib.sha256
    pairs = iter(row)
    return [sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]


def _largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly less than ``n`` (``n`` at least 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The right edge of a Merkle tree: the roots of its perfect subtrees, largest first.

    Appending a leaf hash returns every perfect subtree that the leaf completes, so that a log can
    store them. The root of the whole tree is a fold of at most ``log2(size) + 1`` hashes.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        levels = [bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
        if len(levels) != len(hashes):
            raise ValueError(
                f"a tree of size {size} has {len(levels)} perfect subtrees on its right edge, "
                f"got {len(hashes)} hashes"
            )
        self._size = size
        self._levels = levels
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    def nodes(self) -> list[NodeId]:
        """Return the perfect subtrees of the right edge, largest (leftmost) first."""
        ids: list[NodeId] = []
        start = 0
        for level in self._levels:
            ids.append((level, start >> level))
            start += 1 << level
        return ids

    def hashes(self) -> list[bytes]:
        return list(self._hashes)

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._hashes)

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Append one leaf hash; return the perfect subtrees it completes, the leaf first."""
        completed: list[tuple[NodeId, bytes]] = [((0, self._size), leaf)]
        self._levels.append(0)
        self._hashes.append(leaf)
        index = self._size
        while len(self._levels) > 1 and self._levels[-1] == self._levels[-2]:
            right = self._hashes.pop()
            left = self._hashes.pop()
            level = self._levels.pop() + 1
            self._levels[-1] = level
            merged = node_hash(left, right)
            self._hashes.append(merged)
            index >>= 1
            completed.append(((level, index), merged))
        self._size += 1
        return completed

    def extend(self, leaves: Sequence[bytes], *, min_level: int = 0) -> list[tuple[NodeId, bytes]]:
        """Append leaf hashes; return the perfect subtrees they complete at ``min_level`` or above.

        The result equals appending the leaves one by one with :meth:`append` and keeping the
        subtrees at ``min_level`` or above, but the hashing runs level by level in list
        comprehensions, which is several times faster for large batches. The subtrees come
        ordered by level, then by index.
        """
        edge = dict(zip(self._levels, self._hashes, strict=True))
        completed: list[tuple[NodeId, bytes]] = []
        level = 0
        first = self._size
        current = list(leaves)
        while current:
            if level >= min_level:
                ids = zip(repeat(level), range(first, first + len(current)), strict=False)
                completed.extend(zip(ids, current, strict=True))
            # An odd first index means the new nodes' left sibling is the edge node at this level.
            row = [edge.pop(level), *current] if first & 1 else current
            if len(row) & 1:
                edge[level] = row[-1]
            current = _parent_hashes(row)
            first >>= 1
            level += 1
        self._size += len(leaves)
        self._levels = sorted(edge, reverse=True)
        self._hashes = [edge[edge_level] for edge_level in self._levels]
        return completed

    def root(self) -> bytes:
        """Return the root hash of the tree."""
        if not self._hashes:
            return EMPTY_ROOT
        return _fold(self._hashes)


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Fold perfect-subtree hashes, largest first, into the hash of the range they cover."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def root_hash(leaf_hashes: Iterable[bytes]) -> bytes:
    """Return the RFC 9162 root hash of a tree with the given leaf hashes."""
    compact = CompactRange()
    for leaf in leaf_hashes:
        compact.append(leaf)
    return compact.root()


# Proof verification.


def _bad_proof(message: str, *, expected: str = "", actual: str = "") -> Rejected:
    return Rejected(Reason.BAD_PROOF, message, expected=expected, actual=actual)


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise _bad_proof(
            f"{what} is {len(value)} bytes long; a SHA-256 hash is {HASH_SIZE}",
            expected=f"{HASH_SIZE} bytes",
            actual=f"{len(value)} bytes",
        )


def root_from_inclusion_proof(
    leaf: bytes, *, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Return the root that an inclusion proof of ``leaf`` at ``index`` implies.

    Raises:
        Rejected: ``bad-proof`` when the index is outside the tree or the proof has the wrong
            length or a hash of the wrong size.
    """
    if not 0 <= index < size:
        raise _bad_proof(
            f"leaf index {index} is outside a tree of size {size}",
            expected=f"0 <= index < {size}",
            actual=str(index),
        )
    _check_hash(leaf, "leaf hash")
    for position, element in enumerate(proof):
        _check_hash(element, f"inclusion proof element {position}")

    # RFC 9162, section 2.1.3.2, steps 1 to 4.
    node_index = index
    last_index = size - 1
    result = leaf
    for element in proof:
        if last_index == 0:
            raise _bad_proof(f"inclusion proof for size {size} has too many elements ({len(proof)})")
        if node_index & 1 or node_index == last_index:
            result = node_hash(element, result)
            while not node_index & 1 and node_index != 0:
                node_index >>= 1
                last_index >>= 1
        else:
            result = node_hash(result, element)
        node_index >>= 1
        last_index >>= 1
    if last_index != 0:
        raise _bad_proof(f"inclusion proof for size {size} has too few elements ({len(proof)})")
    return result


def verify_inclusion(
    leaf: bytes, *, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is the leaf hash at ``index`` in the tree of ``size`` with ``root``.

    NOTE: an inclusion proof does not bind the tree size. A size whose proof has the same shape
    verifies too, so ``size`` and ``root`` must come from one signed checkpoint.

    Raises:
        Rejected: ``bad-proof`` when the proof does not lead to ``root``.
    """
    _check_hash(root, "root hash")
    computed = root_from_inclusion_proof(leaf, index=index, size=size, proof=proof)
    if computed != root:
        raise _bad_proof(
            f"inclusion proof of leaf {index} does not lead to the root of tree size {size}",
            expected=root.hex(),
            actual=computed.hex(),
        )


def verify_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(new_size, new_root)`` extends the tree ``(old_size, old_root)``.

    Raises:
        Rejected: ``bad-proof`` when the proof is malformed or does not connect the two roots.
    """
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    for position, element in enumerate(proof):
        _check_hash(element, f"consistency proof element {position}")
    if not 0 <= old_size <= new_size:
        raise _bad_proof(
            f"old tree size {old_size} is larger than new tree size {new_size}",
            expected=f"0 <= old size <= {new_size}",
            actual=str(old_size),
        )

    # Equal sizes and the empty old tree need an empty proof (RFC 9162, section 2.1.4.1).
    if old_size == new_size:
        if proof:
            raise _bad_proof(f"consistency proof between equal sizes {old_size} must be empty")
        if old_root != new_root:
            raise _bad_proof(
                f"two trees of size {old_size} have different roots",
                expected=old_root.hex(),
                actual=new_root.hex(),
            )
        return
    if old_size == 0:
        if proof:
            raise _bad_proof("consistency proof from the empty tree must be empty")
        if old_root != EMPTY_ROOT:
            raise _bad_proof("the root of a tree of size 0 must be SHA-256 of the empty string")
        return
    if not proof:
        raise _bad_proof(f"consistency proof from size {old_size} to {new_size} is empty")

    # RFC 9162, section 2.1.4.2, steps 1 to 6.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    node_index = old_size - 1
    last_index = new_size - 1
    while node_index & 1:
        node_index >>= 1
        last_index >>= 1
    old_result = new_result = path[0]
    for element in path[1:]:
        if last_index == 0:
            raise _bad_proof(
                f"consistency proof from size {old_size} to {new_size} has too many elements"
            )
        if node_index & 1 or node_index == last_index:
            old_result = node_hash(element, old_result)
            new_result = node_hash(element, new_result)
            while not node_index & 1 and node_index != 0:
                node_index >>= 1
                last_index >>= 1
        else:
            new_result = node_hash(new_result, element)
        node_index >>= 1
        last_index >>= 1
    if last_index != 0:
        raise _bad_proof(f"consistency proof from size {old_size} to {new_size} is too short")
    if old_result != old_root:
        raise _bad_proof(
            f"consistency proof does not lead to the root of size {old_size}",
            expected=old_root.hex(),
            actual=old_result.hex(),
        )
    if new_result != new_root:
        raise _bad_proof(
            f"consistency proof does not lead to the root of size {new_size}",
            expected=new_root.hex(),
            actual=new_result.hex(),
        )


# Proof construction.


def range_nodes(start: int, end: int) -> list[NodeId]:
    """Split the leaf range ``[start, end)`` into perfect subtrees, largest first.

    The range must be a subtree of the RFC 9162 recursion: ``start`` is a multiple of the smallest
    power of two that is at least ``end - start``. Every range in a proof is of that form.
    """
    length = end - start
    if length <= 0:
        raise ValueError(f"leaf range [{start}, {end}) is empty")
    span = 1 << (length - 1).bit_length()
    if start % span:
        raise ValueError(f"leaf range [{start}, {end}) is not a subtree of an RFC 9162 tree")
    nodes: list[NodeId] = []
    position = start
    for level in range(length.bit_length() - 1, -1, -1):
        if length >> level & 1:
            nodes.append((level, position >> level))
            position += 1 << level
    return nodes


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose hashes form the inclusion proof of ``index`` in ``size``."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        split = start + _largest_power_of_two_below(end - start)
        if index < split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((start, split))
            start = split
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose hashes form the consistency proof from old to new size."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"cannot prove consistency from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, count, whole = 0, new_size, old_size, True
    while count != end - start:
        split = _largest_power_of_two_below(end - start)
        if count <= split:
            ranges.append((start + split, end))
            end = start + split
        else:
            ranges.append((start, start + split))
            start += split
            count -= split
            whole = False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def hash_ranges(ranges: Sequence[tuple[int, int]], read_nodes: NodeReader) -> list[bytes]:
    """Return the hash of each leaf range, reading all needed perfect subtrees in one call."""
    split = [range_nodes(start, end) for start, end in ranges]
    wanted = sorted({node for nodes in split for node in nodes})
    stored = read_nodes(wanted)
    missing = [node for node in wanted if node not in stored]
    if missing:
        raise LookupError(f"the node store has no hash for subtree(s) {missing[:5]}")
    return [_fold([stored[node] for node in nodes]) for nodes in split]
