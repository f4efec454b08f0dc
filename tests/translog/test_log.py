"""The log service: appends, durability across reopen, proofs and bundles."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexheg.errors import InputError
from flexheg.translog.log import TransparencyLog
from flexheg.translog.storage import SQLiteLogStorage
from flexheg.translog.witness import Witness, collect_cosignatures
from flexheg.wire.checkpoint import NoteSigner, verify_log_bundle, verify_note
from flexheg.wire.merkle import leaf_hash, root_hash, verify_consistency, verify_inclusion

from .conftest import LOG_SIGNER, WITNESS_SIGNERS


def entries(count: int, start: int = 0) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(start, start + count)]


def test_append_returns_indices(log: TransparencyLog) -> None:
    appended = log.append(entries(5))
    assert [a.index for a in appended] == [0, 1, 2, 3, 4]
    assert not any(a.duplicate for a in appended)
    assert log.size() == 5


def test_append_is_idempotent(log: TransparencyLog) -> None:
    log.append(entries(3))
    again = log.append([b"entry 1", b"new", b"new"])
    assert [(a.index, a.duplicate) for a in again] == [(1, True), (3, False), (3, True)]
    assert log.size() == 4


def test_root_matches_reference(log: TransparencyLog) -> None:
    data = entries(37)
    for chunk in range(0, 37, 5):
        log.append(data[chunk : chunk + 5])
    assert log.root_hash() == root_hash(leaf_hash(e) for e in data)
    assert log.root_hash(20) == root_hash(leaf_hash(e) for e in data[:20])


def test_reopen_keeps_entries_and_root(tmp_path: Path) -> None:
    first = TransparencyLog(SQLiteLogStorage(tmp_path / "log.sqlite"), LOG_SIGNER)
    first.append(entries(11))
    root = first.root_hash()
    first.close()
    second = TransparencyLog(SQLiteLogStorage(tmp_path / "log.sqlite"), LOG_SIGNER)
    assert second.size() == 11
    assert second.root_hash() == root
    second.append(entries(2, 11))
    assert second.root_hash() == root_hash(leaf_hash(e) for e in entries(13))


def test_open_with_other_key_name_rejected(tmp_path: Path) -> None:
    TransparencyLog(SQLiteLogStorage(tmp_path / "log.sqlite"), LOG_SIGNER).close()
    with pytest.raises(InputError, match="belongs to log"):
        TransparencyLog(SQLiteLogStorage(tmp_path / "log.sqlite"), NoteSigner.generate("other"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=8), st.data())
def test_proofs_verify(tmp_path_factory: pytest.TempPathFactory, batches: list[int],
                       data: st.DataObject) -> None:
    path = tmp_path_factory.mktemp("log") / "log.sqlite"
    log = TransparencyLog(SQLiteLogStorage(path), LOG_SIGNER)
    total = 0
    for count in batches:
        log.append(entries(count, total))
        total += count
    size = data.draw(st.integers(min_value=1, max_value=total))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=0, max_value=size))
    verify_inclusion(leaf_hash(f"entry {index}".encode()), index=index, size=size,
                     proof=log.inclusion_proof(index, size), root=log.root_hash(size))
    verify_consistency(old_size=old, new_size=size, old_root=log.root_hash(old),
                       new_root=log.root_hash(size), proof=log.consistency_proof(old, size))
    log.close()


def test_checkpoint_signed_and_stored(log: TransparencyLog) -> None:
    log.append(entries(4))
    checkpoint = log.sign_checkpoint()
    assert checkpoint.size == 4
    assert verify_note(checkpoint.signed_note(), LOG_SIGNER.verifier())
    assert log.checkpoint() == checkpoint
    assert log.sign_checkpoint().to_bytes() == checkpoint.to_bytes()


def test_no_checkpoint_yet(log: TransparencyLog) -> None:
    with pytest.raises(InputError, match="sign one first"):
        log.checkpoint()


def test_bundle_verified_by_device(log: TransparencyLog, witnesses: list[Witness]) -> None:
    log.append(entries(9))
    first = log.sign_checkpoint()
    cosignatures, failures = collect_cosignatures(
        first, witnesses, consistency_proof=log.consistency_proof, now=100
    )
    assert failures == {}
    first = log.add_cosignatures(first.size, cosignatures)
    keys = [w.cosignature_verifier() for w in WITNESS_SIGNERS]
    seen = verify_log_bundle(log.bundle(entries(2), newest_seen_size=None).to_json(),
                             entries=entries(2), log_key=LOG_SIGNER.verifier(),
                             witnesses=keys, quorum=3, newest_seen=None)
    log.append(entries(5, 9))
    second = log.sign_checkpoint()
    cosignatures, failures = collect_cosignatures(
        second, witnesses, consistency_proof=log.consistency_proof, now=200
    )
    assert failures == {}
    second = log.add_cosignatures(second.size, cosignatures)
    newest = verify_log_bundle(log.bundle([b"entry 12"], newest_seen_size=seen.size),
                               entries=[b"entry 12"], log_key=LOG_SIGNER.verifier(),
                               witnesses=keys, quorum=3, newest_seen=seen)
    assert newest == second


def test_bundle_for_unknown_entry(log: TransparencyLog) -> None:
    log.append(entries(2))
    log.sign_checkpoint()
    with pytest.raises(InputError, match="is not in log"):
        log.bundle([b"never appended"], newest_seen_size=None)


def test_bundle_entry_after_checkpoint(log: TransparencyLog) -> None:
    log.append(entries(2))
    log.sign_checkpoint()
    log.append([b"late"])
    with pytest.raises(InputError, match="not under checkpoint"):
        log.bundle([b"late"], newest_seen_size=None)


def test_oversized_entry_rejected(log: TransparencyLog) -> None:
    with pytest.raises(InputError, match="limit"):
        log.append([b"x" * (1 << 20 + 1)])


def test_proof_outside_tree_rejected(log: TransparencyLog) -> None:
    log.append(entries(3))
    with pytest.raises(InputError):
        log.inclusion_proof(3, 3)
    with pytest.raises(InputError):
        log.consistency_proof(2, 4)
