"""Witnesses cosign only consistent checkpoints; gossip turns a split view into a proof."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexheg.errors import Reason, Rejected
from flexheg.translog.equivocation import LogForkProof, proof_to_json, verify_equivocation
from flexheg.translog.gossip import CheckpointPool
from flexheg.translog.log import TransparencyLog
from flexheg.translog.storage import SQLiteLogStorage, SQLiteWitnessStorage
from flexheg.translog.witness import Witness, WitnessConflict, request_cosignature
from flexheg.wire.checkpoint import NoteSigner, cosignature_time

from .conftest import LOG_SIGNER, WITNESS_SIGNERS


def grow(log: TransparencyLog, count: int, tag: str = "entry") -> None:
    start = log.size()
    log.append([f"{tag} {i}".encode() for i in range(start, start + count)])


def test_witness_cosigns_consistent_growth(log: TransparencyLog, witnesses: list[Witness]) -> None:
    witness = witnesses[0]
    grow(log, 3)
    first = log.sign_checkpoint()
    line = request_cosignature(first, witness, consistency_proof=log.consistency_proof, now=10)
    grow(log, 4)
    second = log.sign_checkpoint()
    line2 = request_cosignature(second, witness, consistency_proof=log.consistency_proof, now=20,
                                known_size=first.size)
    cosigned = second.with_signatures([line2])
    assert cosignature_time(cosigned.signed_note(), witness.verifier()) == 20
    assert line.name == witness.name
    stored = witness.latest(LOG_SIGNER.name)
    assert stored is not None
    assert stored.size == 7


def test_witness_state_survives_restart(tmp_path: Path, log: TransparencyLog) -> None:
    logs = {LOG_SIGNER.name: LOG_SIGNER.verifier()}
    witness = Witness(SQLiteWitnessStorage(tmp_path / "w.sqlite"), WITNESS_SIGNERS[0], logs)
    grow(log, 5)
    checkpoint = log.sign_checkpoint()
    request_cosignature(checkpoint, witness, consistency_proof=log.consistency_proof, now=1)
    restarted = Witness(SQLiteWitnessStorage(tmp_path / "w.sqlite"), WITNESS_SIGNERS[0], logs)
    with pytest.raises(WitnessConflict) as caught:
        restarted.add_checkpoint(old_size=0, proof=[], checkpoint=checkpoint.to_bytes(), now=2)
    assert caught.value.size == 5


def test_witness_rejects_rollback(log: TransparencyLog, witnesses: list[Witness]) -> None:
    grow(log, 3)
    small = log.sign_checkpoint()
    grow(log, 3)
    big = log.sign_checkpoint()
    request_cosignature(big, witnesses[0], consistency_proof=log.consistency_proof, now=1)
    with pytest.raises(Rejected) as caught:
        request_cosignature(small, witnesses[0], consistency_proof=log.consistency_proof, now=2)
    assert caught.value.reason is Reason.INCONSISTENT_LOG


def test_witness_rejects_unknown_log(tmp_path: Path, witnesses: list[Witness]) -> None:
    other = TransparencyLog(SQLiteLogStorage(tmp_path / "o.sqlite"), NoteSigner.generate("o.test"))
    grow(other, 2)
    checkpoint = other.sign_checkpoint()
    with pytest.raises(Rejected) as caught:
        witnesses[0].add_checkpoint(old_size=0, proof=[], checkpoint=checkpoint.to_bytes(), now=1)
    assert caught.value.reason is Reason.NOT_LOGGED


def test_witness_rejects_forged_log_signature(tmp_path: Path, witnesses: list[Witness]) -> None:
    impostor = NoteSigner.generate(LOG_SIGNER.name)
    forged_log = TransparencyLog(SQLiteLogStorage(tmp_path / "f.sqlite"), impostor)
    grow(forged_log, 2)
    checkpoint = forged_log.sign_checkpoint()
    with pytest.raises(Rejected) as caught:
        witnesses[0].add_checkpoint(old_size=0, proof=[], checkpoint=checkpoint.to_bytes(), now=1)
    assert caught.value.reason is Reason.NOT_LOGGED


def split_view(tmp_path: Path) -> tuple[TransparencyLog, TransparencyLog]:
    """One log key, two diverging trees: what a dishonest operator shows two devices."""
    view_a = TransparencyLog(SQLiteLogStorage(tmp_path / "a.sqlite"), LOG_SIGNER)
    view_b = TransparencyLog(SQLiteLogStorage(tmp_path / "b.sqlite"), LOG_SIGNER)
    for view in (view_a, view_b):
        grow(view, 5)
    grow(view_a, 3, "honest")
    grow(view_b, 3, "secret")
    return view_a, view_b


def test_witness_detects_split_view(tmp_path: Path, witnesses: list[Witness]) -> None:
    view_a, view_b = split_view(tmp_path)
    a = view_a.sign_checkpoint()
    b = view_b.sign_checkpoint()
    request_cosignature(a, witnesses[0], consistency_proof=view_a.consistency_proof, now=1)
    with pytest.raises(Rejected) as caught:
        request_cosignature(b, witnesses[0], consistency_proof=view_b.consistency_proof, now=2)
    assert caught.value.reason is Reason.INCONSISTENT_LOG
    assert len(witnesses[0].forks) == 1
    assert verify_equivocation(proof_to_json(witnesses[0].forks[0])).kind == "log-fork"


def test_gossip_same_size_fork(tmp_path: Path) -> None:
    view_a, view_b = split_view(tmp_path)
    device_1 = CheckpointPool(LOG_SIGNER.verifier())
    device_2 = CheckpointPool(LOG_SIGNER.verifier())
    device_1.observe(view_a.sign_checkpoint())
    device_2.observe(view_b.sign_checkpoint())
    forks = device_1.exchange(device_2)
    assert len(forks) == 1
    finding = verify_equivocation(proof_to_json(forks[0]))
    assert finding.party == LOG_SIGNER.name


def test_gossip_fork_at_different_sizes(tmp_path: Path) -> None:
    view_a, view_b = split_view(tmp_path)
    device_1 = CheckpointPool(LOG_SIGNER.verifier())
    device_2 = CheckpointPool(LOG_SIGNER.verifier())
    device_1.observe(view_a.sign_checkpoint())
    grow(view_b, 4, "more")
    device_2.observe(view_b.sign_checkpoint())
    assert device_1.exchange(device_2) == []
    result = device_1.audit([view_a, view_b])
    assert len(result.forks) == 1
    fork = result.forks[0]
    assert isinstance(fork, LogForkProof)
    assert verify_equivocation(proof_to_json(fork)).details["sizes"] == [8, 12]


def test_gossip_consistent_views_no_fork(log: TransparencyLog) -> None:
    pool = CheckpointPool(LOG_SIGNER.verifier())
    grow(log, 4)
    pool.observe(log.sign_checkpoint())
    grow(log, 4)
    pool.observe(log.sign_checkpoint())
    result = pool.audit([log])
    assert result.forks == ()
    assert result.unresolved == ()


def test_gossip_unresolved_without_source(tmp_path: Path) -> None:
    view_a, view_b = split_view(tmp_path)
    pool = CheckpointPool(LOG_SIGNER.verifier())
    pool.observe(view_a.sign_checkpoint())
    grow(view_b, 2)
    pool.observe(view_b.sign_checkpoint())
    result = pool.audit([view_a])
    assert result.forks == ()
    assert len(result.unresolved) == 1


def test_gossip_rejects_unsigned_checkpoint(tmp_path: Path) -> None:
    impostor = TransparencyLog(SQLiteLogStorage(tmp_path / "i.sqlite"),
                               NoteSigner.generate(LOG_SIGNER.name))
    grow(impostor, 1)
    pool = CheckpointPool(LOG_SIGNER.verifier())
    with pytest.raises(Rejected):
        pool.observe(impostor.sign_checkpoint())
