"""The approver ledger assigns serials, persists them, and never reuses one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexheg.authority.ledger import ApproverSigner
from flexheg.errors import InputError, Reason, Rejected
from flexheg.policy import Action, Approval
from flexheg.wire import SigningKey, sha256_digest

KEY = SigningKey.generate()
AGREEMENT = sha256_digest(b"agreement")


def subject(n: int) -> str:
    return sha256_digest(f"subject {n}".encode())


def test_serials_count_up(tmp_path: Path) -> None:
    with ApproverSigner.open(tmp_path / "l.sqlite", KEY, "bloc-a") as signer:
        envelopes = [signer.approve(agreement=AGREEMENT, action=Action.INSTALL, subject=subject(i),
                                    version=i + 1, now=10) for i in range(3)]
    serials = [e.statement(Approval, what="t").serial for e in envelopes]
    assert serials == [0, 1, 2]
    assert all(e.verified_by({KEY.keyid: KEY.public}) for e in envelopes)


def test_serials_continue_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with ApproverSigner.open(path, KEY, "bloc-a") as signer:
        signer.approve(agreement=AGREEMENT, action=Action.INSTALL, subject=subject(0), version=1,
                       now=1)
    with ApproverSigner.open(path, KEY, "bloc-a") as signer:
        envelope = signer.approve(agreement=AGREEMENT, action=Action.INSTALL, subject=subject(1),
                                  version=2, now=2)
        assert envelope.statement(Approval, what="t").serial == 1
        assert [r.serial for r in signer.records()] == [0, 1]


def test_approvers_have_own_serials(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with ApproverSigner.open(path, KEY, "bloc-a") as a, ApproverSigner.open(path, KEY, "bloc-b") as b:
        a.approve(agreement=AGREEMENT, action=Action.INSTALL, subject=subject(0), version=1, now=1)
        envelope = b.approve(agreement=AGREEMENT, action=Action.INSTALL, subject=subject(0),
                             version=1, now=1)
    assert envelope.statement(Approval, what="t").serial == 0


def test_stale_extension_rejected_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with ApproverSigner.open(path, KEY, "bloc-a") as signer:
        signer.approve(agreement=AGREEMENT, action=Action.INSTALL, subject=subject(1), version=1,
                       now=1)
        signer.approve(agreement=AGREEMENT, action=Action.INSTALL, subject=subject(2), version=2,
                       now=2)
    with ApproverSigner.open(path, KEY, "bloc-a") as signer:
        with pytest.raises(Rejected) as caught:
            signer.approve(agreement=AGREEMENT, action=Action.EXTEND, subject=subject(3),
                           version=1, now=3)
        assert caught.value.reason is Reason.ROLLBACK
        assert len(signer.records()) == 2
        signer.approve(agreement=AGREEMENT, action=Action.EXTEND, subject=subject(4), version=2,
                       now=4)
        other = sha256_digest(b"other agreement")
        signer.approve(agreement=other, action=Action.EXTEND, subject=subject(5), version=1, now=5)


def test_extension_needs_version(tmp_path: Path) -> None:
    with ApproverSigner.open(tmp_path / "l.sqlite", KEY, "bloc-a") as signer, \
            pytest.raises(InputError, match="version"):
        signer.approve(agreement=AGREEMENT, action=Action.EXTEND, subject=subject(1),
                       version=None, now=1)


def test_serial_is_primary_key(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with ApproverSigner.open(path, KEY, "bloc-a") as signer:
        signer.approve(agreement=AGREEMENT, action=Action.INSTALL, subject=subject(1), version=1,
                       now=1)
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO approvals VALUES ('bloc-a', 0, 'a', 'install', 'x', 1, 'k', x'00')")
    db.close()


def test_resign_gives_same_envelope(tmp_path: Path) -> None:
    with ApproverSigner.open(tmp_path / "l.sqlite", KEY, "bloc-a") as signer:
        envelope = signer.approve(agreement=AGREEMENT, action=Action.INSTALL, subject=subject(1),
                                  version=1, now=1)
        assert signer.resign(0) == envelope
        with pytest.raises(InputError, match="no recorded serial"):
            signer.resign(1)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([Action.INSTALL, Action.EXTEND]),
                          st.integers(min_value=0, max_value=5),
                          st.integers(min_value=0, max_value=3)), max_size=12))
def test_ledger_state_machine(tmp_path_factory: pytest.TempPathFactory,
                              requests: list[tuple[Action, int, int]]) -> None:
    path = tmp_path_factory.mktemp("ledger") / "l.sqlite"
    newest: int | None = None
    signed = 0
    with ApproverSigner.open(path, KEY, "bloc-a") as signer:
        for action, version, n in requests:
            should_reject = action is Action.EXTEND and newest is not None and version < newest
            try:
                signer.approve(agreement=AGREEMENT, action=action, subject=subject(n),
                               version=version, now=1)
            except Rejected:
                assert should_reject
                continue
            assert not should_reject
            signed += 1
            newest = version if newest is None else max(newest, version)
        records = signer.records()
    assert [r.serial for r in records] == list(range(signed))
