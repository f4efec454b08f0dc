"""Replays of faults that shipped in well-known update, transparency and attestation systems.

Each test replays the fault's attack against flexheg and checks that the guarantee processor
rejects it with the right reason code:

* a threshold that counts signature entries or key ids instead of distinct approvers;
* a rollback check that compares against a default after a restart;
* a valid signature taken as proof of freshness;
* a key validity window that is recorded but not enforced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _parties import BLOCS, DAY, START, Parties, write_approvals
from flexheg.device import install
from flexheg.errors import Reason, Rejected
from flexheg.wire import Envelope, EnvelopeSignature

# Threshold counting.


def test_threshold_ignores_duplicate_approvals() -> None:
    parties = Parties()
    state = parties.state()
    payload = parties.update(1)
    approval_a = parties.approve(payload, approvers=["bloc-a"])[0]
    approval_b = parties.approve(payload, approvers=["bloc-b"])[0]

    with pytest.raises(Rejected) as exc:
        install(state, payload, [approval_a, approval_a, approval_b], START)

    assert exc.value.reason is Reason.INSUFFICIENT_APPROVALS
    assert "2 of 3 approvers signed" in exc.value.message
    assert "missing: bloc-c" in exc.value.message


def test_threshold_ignores_repeated_signature_entries() -> None:
    """One envelope with the same signature entry three times counts as one approver."""
    parties = Parties()
    state = parties.state()
    payload = parties.update(1)
    approval_a = parties.approve(payload, approvers=["bloc-a"])[0]
    stuffed = Envelope(approval_a.payload, approval_a.payload_type, approval_a.signatures * 3)
    approval_b = parties.approve(payload, approvers=["bloc-b"])[0]

    with pytest.raises(Rejected) as exc:
        install(state, payload, [stuffed, approval_b], START)

    assert exc.value.reason is Reason.INSUFFICIENT_APPROVALS
    assert exc.value.actual == "2 votes from bloc-a, bloc-b"


def test_threshold_ignores_key_listed_twice() -> None:
    """Approver A's key under two key ids, with one approval under each, is still one approver."""
    parties = Parties(alias_keyids={"bloc-a": "bloc-a-second-keyid"})
    state = parties.state()
    payload = parties.update(1)
    primary = parties.approve_under_keyid(payload, "bloc-a", parties.keys["bloc-a"].keyid)
    alias = parties.approve_under_keyid(payload, "bloc-a", "bloc-a-second-keyid")
    approval_b = parties.approve(payload, approvers=["bloc-b"])[0]

    with pytest.raises(Rejected) as exc:
        install(state, payload, [primary, alias, approval_b], START)

    assert exc.value.reason is Reason.INSUFFICIENT_APPROVALS
    assert "2 of 3 approvers signed" in exc.value.message
    assert "missing: bloc-c" in exc.value.message


def test_threshold_ignores_both_keyids_in_one_envelope() -> None:
    parties = Parties(alias_keyids={"bloc-a": "bloc-a-second-keyid"})
    state = parties.state()
    payload = parties.update(1)
    approval_a = parties.approve(payload, approvers=["bloc-a"])[0]
    signature = approval_a.signatures[0]
    both = Envelope(
        approval_a.payload,
        approval_a.payload_type,
        (signature, EnvelopeSignature("bloc-a-second-keyid", signature.sig)),
    )

    with pytest.raises(Rejected) as exc:
        install(state, payload, [both, *parties.approve(payload, approvers=["bloc-b"])], START)

    assert exc.value.reason is Reason.INSUFFICIENT_APPROVALS


def test_threshold_alias_key_counts_alone() -> None:
    """The second key id is a working key: with B and C it completes the all-approvers policy."""
    parties = Parties(alias_keyids={"bloc-a": "bloc-a-second-keyid"})
    state = parties.state()
    payload = parties.update(1)
    alias = parties.approve_under_keyid(payload, "bloc-a", "bloc-a-second-keyid")

    new_state, result = install(
        state, payload, [alias, *parties.approve(payload, approvers=BLOCS[1:])], START
    )

    assert result.approvals.signed == BLOCS
    assert new_state.highest_version == 1


# Rollback after a restart.


def _flexheg(*args: str | Path) -> tuple[int, dict[str, object]]:
    """Run the ``flexheg`` command in a new process with ``--json``."""
    completed = subprocess.run(
        [sys.executable, "-m", "flexheg.cli", *map(str, args), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    document: dict[str, object] = json.loads(completed.stdout)
    return completed.returncode, document


def test_rollback_after_restart(tmp_path: Path) -> None:
    """A new device process compares against the persisted version, not a default of 0."""
    import time  # noqa: PLC0415

    parties = Parties()
    files = parties.write_files(tmp_path)
    now = int(time.time())
    folder = tmp_path / "device"

    code, _ = _flexheg(
        "device", "provision", folder,
        "--agreement", files["agreement"],
        "--manufacturer-key", files["manufacturer.pem"],
        "--device-id", "dev-1",
    )  # fmt: skip
    assert code == 0

    v5 = parties.update(5, issued_at=now)
    (tmp_path / "v5.json").write_bytes(v5)
    approvals_v5 = write_approvals(tmp_path / "approvals", parties.approve(v5, time=now), "v5")
    code, document = _flexheg(
        "device", "install", folder, tmp_path / "v5.json", *[f"--approval={p}" for p in approvals_v5]
    )
    assert code == 0, document
    assert document["version"] == 5

    v3 = parties.update(3, issued_at=now)
    (tmp_path / "v3.json").write_bytes(v3)
    approvals_v3 = write_approvals(tmp_path / "approvals", parties.approve(v3, time=now), "v3")
    code, document = _flexheg(
        "device", "install", folder, tmp_path / "v3.json", *[f"--approval={p}" for p in approvals_v3]
    )
    assert code == 1
    assert document["reason"] == "rollback"
    assert document["expected"] == "version > 5"
    assert document["actual"] == "version 3"

    code, status = _flexheg("device", "status", folder)
    assert code == 0
    assert status["mode"] == "active"
    assert status["installed_version"] == 5
    assert status["highest_version"] == 5


def test_rollback_after_restart_and_expiry(tmp_path: Path) -> None:
    """After the newer update expires and the device restarts, the older one still cannot install."""
    from _parties import FakeClock  # noqa: PLC0415
    from flexheg.device import Device  # noqa: PLC0415

    parties = Parties()
    clock = FakeClock()
    device = parties.provision(tmp_path / "device", clock)
    v5 = parties.update(5, lifetime=DAY)
    device.install(v5, parties.approve(v5))
    clock.value += 2 * DAY
    del device

    restarted = Device(tmp_path / "device", host_clock=clock)
    assert restarted.status()["mode"] == "baseline"
    v3 = parties.update(3, issued_at=clock.value)
    with pytest.raises(Rejected) as exc:
        restarted.install(v3, parties.approve(v3))

    assert exc.value.reason is Reason.ROLLBACK
    assert restarted.status()["highest_version"] == 5


# Signature taken as freshness.


def test_replayed_old_version_is_rollback() -> None:
    parties = Parties()
    state = parties.state()
    v3 = parties.update(3)
    v3_approvals = parties.approve(v3)
    state, _ = install(state, v3, v3_approvals, START)
    v4 = parties.update(4)
    state, _ = install(state, v4, parties.approve(v4), START + 10)

    with pytest.raises(Rejected) as exc:
        install(state, v3, v3_approvals, START + 20)

    assert exc.value.reason is Reason.ROLLBACK
    assert exc.value.expected == "version > 4"
    assert exc.value.actual == "version 3"
    assert state.installed is not None
    assert state.installed.update.version == 4


def test_replayed_skipped_version_is_rollback() -> None:
    """Signed bytes of v3 that the device never saw are still too old once v4 is installed."""
    parties = Parties()
    state = parties.state()
    v3 = parties.update(3)
    v3_approvals = parties.approve(v3)
    v4 = parties.update(4)
    state, _ = install(state, v4, parties.approve(v4), START)

    with pytest.raises(Rejected) as exc:
        install(state, v3, v3_approvals, START + 1)

    assert exc.value.reason is Reason.ROLLBACK


# Key validity windows.


def test_key_window_enforced_after_end() -> None:
    parties = Parties(windows={"bloc-b": (None, START + 500)})
    state = parties.state()
    payload = parties.update(1)
    approvals = parties.approve(payload, time=START + 400)

    with pytest.raises(Rejected) as exc:
        install(state, payload, approvals, START + 600)

    assert exc.value.reason is Reason.INSUFFICIENT_APPROVALS
    assert "missing: bloc-b" in exc.value.message
    assert f"not valid at tick {START + 600}" in exc.value.message
    assert exc.value.actual == "2 votes from bloc-a, bloc-c"


def test_key_window_counts_on_last_tick() -> None:
    parties = Parties(windows={"bloc-b": (None, START + 500)})
    state = parties.state()
    payload = parties.update(1)

    new_state, result = install(state, payload, parties.approve(payload), START + 500)

    assert result.approvals.signed == BLOCS
    assert new_state.highest_version == 1


def test_key_window_enforced_before_start() -> None:
    parties = Parties(windows={"bloc-c": (START + 100, None)})
    state = parties.state()
    payload = parties.update(1)

    with pytest.raises(Rejected) as exc:
        install(state, payload, parties.approve(payload), START + 99)

    assert exc.value.reason is Reason.INSUFFICIENT_APPROVALS
    assert "missing: bloc-c" in exc.value.message
