"""Property tests: every honest proof verifies and every single-bit change is rejected."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexheg.errors import Reason, Rejected
from flexheg.wire.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    consistency_ranges,
    hash_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_nodes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)


def reference_root(leaves: list[bytes]) -> bytes:
    """The recursive MTH definition of RFC 9162, section 2.1.1, over leaf hashes."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(reference_root(leaves[:split]), reference_root(leaves[split:]))


class Tree:
    def __init__(self, size: int) -> None:
        self.leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
        self.nodes: dict[NodeId, bytes] = {}
        compact = CompactRange()
        for leaf in self.leaves:
            self.nodes.update(compact.append(leaf))
        self.compact = compact

    def read(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return {node: self.nodes[node] for node in ids}

    def root(self, size: int) -> bytes:
        return reference_root(self.leaves[:size])

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return hash_ranges(inclusion_ranges(index, size), self.read)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return hash_ranges(consistency_ranges(old, new), self.read)


def flip(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


sizes = st.integers(min_value=1, max_value=300)


def _starts(ranges: list[tuple[int, int]]) -> list[int]:
    return [start for start, _end in ranges]


def _is_power_of_two(n: int) -> bool:
    return n & (n - 1) == 0


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_root_matches_recursive_definition(entries: list[bytes]) -> None:
    leaves = [leaf_hash(e) for e in entries]
    assert root_hash(leaves) == reference_root(leaves)


def test_empty_root_is_sha256_of_nothing() -> None:
    assert root_hash([]) == hashlib.sha256(b"").digest()


@given(sizes, st.data())
def test_inclusion_proofs_verify(size: int, data: st.DataObject) -> None:
    tree = Tree(size)
    tree_size = data.draw(st.integers(min_value=1, max_value=size))
    index = data.draw(st.integers(min_value=0, max_value=tree_size - 1))
    proof = tree.inclusion(index, tree_size)
    verify_inclusion(tree.leaves[index], index=index, size=tree_size, proof=proof,
                     root=tree.root(tree_size))


@given(sizes, st.data())
def test_consistency_proofs_verify(size: int, data: st.DataObject) -> None:
    tree = Tree(size)
    new = data.draw(st.integers(min_value=0, max_value=size))
    old = data.draw(st.integers(min_value=0, max_value=new))
    proof = tree.consistency(old, new)
    verify_consistency(old_size=old, new_size=new, old_root=tree.root(old),
                       new_root=tree.root(new), proof=proof)


@settings(max_examples=60)
@given(st.integers(min_value=2, max_value=200), st.data())
def test_inclusion_bit_flips_rejected(size: int, data: st.DataObject) -> None:
    tree = Tree(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = tree.inclusion(index, size)
    root = tree.root(size)
    leaf = tree.leaves[index]
    for position in range(len(proof)):
        bit = data.draw(st.integers(min_value=0, max_value=255))
        changed = [*proof[:position], flip(proof[position], bit), *proof[position + 1 :]]
        with pytest.raises(Rejected) as caught:
            verify_inclusion(leaf, index=index, size=size, proof=changed, root=root)
        assert caught.value.reason is Reason.BAD_PROOF
    with pytest.raises(Rejected):
        verify_inclusion(leaf, index=index, size=size, proof=proof,
                         root=flip(root, data.draw(st.integers(0, 255))))
    with pytest.raises(Rejected):
        verify_inclusion(flip(leaf, data.draw(st.integers(0, 255))), index=index, size=size,
                         proof=proof, root=root)
    # The proof does not authenticate the size (the signed checkpoint does): a changed size
    # passes only when its proof has exactly the same shape, so the same hashes are combined.
    size_bit = data.draw(st.integers(min_value=0, max_value=size.bit_length()))
    other_size = size ^ (1 << size_bit)
    try:
        verify_inclusion(leaf, index=index, size=other_size, proof=proof, root=root)
    except Rejected:
        pass
    else:
        assert index < other_size
        assert _starts(inclusion_ranges(index, other_size)) == _starts(inclusion_ranges(index, size))
    index_bit = data.draw(st.integers(min_value=0, max_value=size.bit_length()))
    with pytest.raises(Rejected):
        verify_inclusion(leaf, index=index ^ (1 << index_bit), size=size, proof=proof, root=root)


@settings(max_examples=60)
@given(st.integers(min_value=2, max_value=200), st.data())
def test_consistency_bit_flips_rejected(size: int, data: st.DataObject) -> None:
    tree = Tree(size)
    new = data.draw(st.integers(min_value=2, max_value=size))
    old = data.draw(st.integers(min_value=1, max_value=new - 1))
    proof = tree.consistency(old, new)
    old_root, new_root = tree.root(old), tree.root(new)
    for position in range(len(proof)):
        bit = data.draw(st.integers(min_value=0, max_value=255))
        changed = [*proof[:position], flip(proof[position], bit), *proof[position + 1 :]]
        with pytest.raises(Rejected):
            verify_consistency(old_size=old, new_size=new, old_root=old_root,
                               new_root=new_root, proof=changed)
    for which in ("old", "new"):
        bit = data.draw(st.integers(min_value=0, max_value=255))
        roots = {"old": old_root, "new": new_root}
        roots[which] = flip(roots[which], bit)
        with pytest.raises(Rejected):
            verify_consistency(old_size=old, new_size=new, old_root=roots["old"],
                               new_root=roots["new"], proof=proof)
    for which in ("old", "new"):
        bit = data.draw(st.integers(min_value=0, max_value=size.bit_length()))
        sizes_ = {"old": old, "new": new}
        sizes_[which] ^= 1 << bit
        try:
            verify_consistency(old_size=sizes_["old"], new_size=sizes_["new"],
                               old_root=old_root, new_root=new_root, proof=proof)
        except Rejected:
            continue
        # Accepted only when the changed sizes give a proof of the very same shape.
        assert _is_power_of_two(sizes_["old"]) == _is_power_of_two(old)
        assert _starts(consistency_ranges(sizes_["old"], sizes_["new"])) == _starts(
            consistency_ranges(old, new)
        )


@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=0, max_value=40))
def test_range_nodes_cover_the_range(start_unit: int, length_bits: int) -> None:
    length = (start_unit % (1 << length_bits)) + 1
    span = 1 << (length - 1).bit_length()
    start = (start_unit // span) * span
    nodes = range_nodes(start, start + length)
    position = start
    for level, index in nodes:
        assert index << level == position
        position += 1 << level
    assert position == start + length


def test_range_nodes_rejects_unaligned_range() -> None:
    with pytest.raises(ValueError, match="not a subtree"):
        range_nodes(1, 4)


def test_compact_range_rejects_wrong_hash_count() -> None:
    with pytest.raises(ValueError, match="perfect subtrees"):
        CompactRange(3, [b"\x00" * 32])
