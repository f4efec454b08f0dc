"""Crash tests: real processes killed with SIGKILL at random points.

Each child is forked from the test process (so it starts in microseconds), runs the real log or
signer on a real SQLite file, reports every acknowledged result on a pipe, and is killed with
SIGKILL after a random delay. The parent then checks that no acknowledged log entry is lost and
that no serial ever carries two subjects.

NOTE: SIGKILL tests crashes of the process, not power loss: the operating system still writes
the page cache out. Durability against power loss rests on ``synchronous=FULL``, not on this test.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from flexheg.authority.ledger import ApproverSigner
from flexheg.policy import Action, Approval
from flexheg.translog.log import TransparencyLog
from flexheg.translog.storage import SQLiteLogStorage
from flexheg.wire import Envelope, SigningKey, sha256_digest
from flexheg.wire.merkle import leaf_hash, root_hash

from .conftest import LOG_SIGNER

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs fork and SIGKILL")

LOG_KILLS = 120
SIGNER_ROUNDS = 25
SIGNERS_PER_ROUND = 4
KEY = SigningKey.generate()
AGREEMENT = sha256_digest(b"crash agreement")


def spawn(work: Callable[[int], None]) -> tuple[int, int]:
    """Fork a child that runs ``work(write_fd)`` forever; return its pid and the read end."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            work(write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    return pid, read_fd


def kill_and_collect(pid: int, read_fd: int, delay: float) -> list[str]:
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    text = b"".join(chunks).decode()
    # A line cut by the kill has no newline; it was never acknowledged.
    return text.split("\n")[:-1]


def test_log_never_loses_acknowledged_entries(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    acknowledged: dict[int, bytes] = {}
    rng = random.Random(1234)

    for round_number in range(LOG_KILLS):

        def writer(fd: int, seed: int = round_number) -> None:
            log = TransparencyLog(SQLiteLogStorage(path), LOG_SIGNER)
            local = random.Random(seed)
            while True:
                batch = [local.randbytes(12) for _ in range(local.randint(1, 6))]
                for entry, appended in zip(batch, log.append(batch), strict=True):
                    os.write(fd, f"{appended.index} {entry.hex()}\n".encode())
                if local.random() < 0.2:
                    log.sign_checkpoint()

        pid, read_fd = spawn(writer)
        for line in kill_and_collect(pid, read_fd, rng.uniform(0.0, 0.03)):
            index_text, entry_hex = line.split()
            acknowledged[int(index_text)] = bytes.fromhex(entry_hex)

    log = TransparencyLog(SQLiteLogStorage(path), LOG_SIGNER)
    stored = log.storage.entries(0, log.size())
    assert [e.index for e in stored] == list(range(log.size()))
    for index, entry in acknowledged.items():
        assert log.entry(index) == entry
    assert log.root_hash() == root_hash(leaf_hash(e.data) for e in stored)
    assert len(acknowledged) > LOG_KILLS // 4  # the kills landed after real appends
    log.close()


def test_signer_never_signs_two_subjects_per_serial(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    rng = random.Random(99)
    emitted: dict[int, set[str]] = defaultdict(set)
    kills = 0

    for round_number in range(SIGNER_ROUNDS):
        children = []
        for child in range(SIGNERS_PER_ROUND):

            def signer_loop(fd: int, seed: int = round_number * 10 + child) -> None:
                local = random.Random(seed)
                with ApproverSigner.open(path, KEY, "bloc-a") as signer:
                    while True:
                        subject = sha256_digest(local.randbytes(4))
                        envelope = signer.approve(agreement=AGREEMENT, action=Action.INSTALL,
                                                  subject=subject, version=1, now=1)
                        os.write(fd, envelope.to_json().replace(b"\n", b"") + b"\n")

            children.append(spawn(signer_loop))
        for pid, read_fd in children:
            for line in kill_and_collect(pid, read_fd, rng.uniform(0.0, 0.02)):
                envelope = Envelope.from_json(line.encode(), what="child output")
                assert envelope.verified_by({KEY.keyid: KEY.public})
                approval = envelope.statement(Approval, what="child output")
                emitted[approval.serial].add(approval.subject)
            kills += 1

    assert kills >= 100
    assert all(len(subjects) == 1 for subjects in emitted.values())
    with ApproverSigner.open(path, KEY, "bloc-a") as signer:
        records = {r.serial: r.subject for r in signer.records()}
    assert sorted(records) == list(range(len(records)))
    for serial, subjects in emitted.items():
        assert records[serial] in subjects
    assert len(emitted) > SIGNER_ROUNDS
