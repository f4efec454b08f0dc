"""One attack per rejection reason of the guarantee processor, through its real interfaces.

Each test builds the attack with the party simulator, checks the stable reason code, and checks
that the rejection shows what the device expected against what it got.
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pytest

from _parties import BLOCS, CAPPED, DAY, START, FakeClock, Parties, workload
from flexheg.device import Device, extend, install, meter
from flexheg.errors import Reason, Rejected
from flexheg.policy import Action, Approval
from flexheg.rules import RulesetUpdate
from flexheg.wire import Envelope, EnvelopeSignature, SigningKey, parse_statement, sha256_digest


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


def rejected(exc: pytest.ExceptionInfo[Rejected], reason: Reason) -> Rejected:
    """Check the reason code of a rejection and return it."""
    assert exc.value.reason is reason, str(exc.value)
    return exc.value


def test_malformed_update_bytes(parties: Parties) -> None:
    state = parties.state()
    truncated = parties.update(1)[:-20]
    with pytest.raises(Rejected) as exc:
        install(state, truncated, parties.approve(truncated), START)
    error = rejected(exc, Reason.MALFORMED)
    assert "invalid JSON" in error.message


def test_malformed_update_pretty_printed(parties: Parties) -> None:
    import json  # noqa: PLC0415

    state = parties.state()
    pretty = json.dumps(json.loads(parties.update(1)), indent=2).encode()
    with pytest.raises(Rejected) as exc:
        install(state, pretty, parties.approve(pretty), START)
    error = rejected(exc, Reason.MALFORMED)
    assert "canonical" in error.message


def test_malformed_approval_payload(parties: Parties) -> None:
    """An envelope that carries an update where an approval belongs is malformed."""
    state = parties.state()
    payload = parties.update(1)
    update = parse_statement(payload, RulesetUpdate, what="update")
    wrong = Envelope.sign(update, parties.keys["bloc-a"])
    with pytest.raises(Rejected) as exc:
        install(state, payload, [wrong, *parties.approve(payload, approvers=BLOCS[1:])], START)
    error = rejected(exc, Reason.MALFORMED)
    assert "approval 0" in error.message
    assert "expected a flexheg.dev/approval/v1 statement" in error.message


def test_wrong_agreement_update(parties: Parties) -> None:
    state = parties.state()
    other = Parties().agreement_digest
    payload = parties.update(1, agreement=other)
    with pytest.raises(Rejected) as exc:
        install(state, payload, parties.approve(payload), START)
    error = rejected(exc, Reason.WRONG_AGREEMENT)
    assert error.expected == parties.agreement_digest
    assert error.actual == other


def test_wrong_agreement_approval(parties: Parties) -> None:
    """An approval signed under another agreement cannot be moved to this one."""
    state = parties.state()
    other = Parties().agreement_digest
    payload = parties.update(1)
    approvals = parties.approve(payload, approvers=BLOCS[:2]) + parties.approve(
        payload, approvers=BLOCS[2:], agreement=other
    )
    with pytest.raises(Rejected) as exc:
        install(state, payload, approvals, START)
    error = rejected(exc, Reason.WRONG_AGREEMENT)
    assert "bloc-c" in error.message
    assert error.expected == parties.agreement_digest
    assert error.actual == other


def test_unknown_signer_forged_key(parties: Parties) -> None:
    state = parties.state()
    payload = parties.update(1)
    forged = parties.approve(payload, key=parties.forger)
    with pytest.raises(Rejected) as exc:
        install(state, payload, forged, START)
    error = rejected(exc, Reason.UNKNOWN_SIGNER)
    assert error.expected == parties.keys["bloc-a"].keyid
    assert error.actual == parties.forger.keyid


def test_unknown_signer_unlisted_approver(parties: Parties) -> None:
    state = parties.state()
    payload = parties.update(1)
    stranger = SigningKey.generate()
    approval = Approval(parties.agreement_digest, Action.INSTALL, sha256_digest(payload), "bloc-z", 1, START)
    approvals = [*parties.approve(payload), Envelope.sign(approval, stranger)]
    with pytest.raises(Rejected) as exc:
        install(state, payload, approvals, START)
    error = rejected(exc, Reason.UNKNOWN_SIGNER)
    assert error.expected == ", ".join(BLOCS)
    assert error.actual == "bloc-z"


def test_bad_signature_flipped_bit(parties: Parties) -> None:
    state = parties.state()
    payload = parties.update(1)
    approvals = parties.approve(payload)
    signature = approvals[1].signatures[0]
    flipped = bytes([signature.sig[0] ^ 1]) + signature.sig[1:]
    approvals[1] = dataclasses.replace(
        approvals[1], signatures=(EnvelopeSignature(signature.keyid, flipped),)
    )
    with pytest.raises(Rejected) as exc:
        install(state, payload, approvals, START)
    error = rejected(exc, Reason.BAD_SIGNATURE)
    assert "bloc-b" in error.message
    assert parties.keys["bloc-b"].keyid in error.expected
    assert error.actual == "invalid signature"


def test_bad_signature_payload_swapped(parties: Parties) -> None:
    """A valid signature over one approval does not cover a re-written approval."""
    state = parties.state()
    payload = parties.update(1)
    approvals = parties.approve(payload)
    altered = Approval(parties.agreement_digest, Action.INSTALL, sha256_digest(payload), "bloc-a", 99, START)
    approvals[0] = dataclasses.replace(approvals[0], payload=altered.encode())
    with pytest.raises(Rejected) as exc:
        install(state, payload, approvals, START)
    rejected(exc, Reason.BAD_SIGNATURE)


def test_insufficient_approvals_two_of_three(parties: Parties) -> None:
    state = parties.state()
    payload = parties.update(1)
    with pytest.raises(Rejected) as exc:
        install(state, payload, parties.approve(payload, approvers=BLOCS[:2]), START)
    error = rejected(exc, Reason.INSUFFICIENT_APPROVALS)
    assert "2 of 3 approvers signed" in error.message
    assert "missing: bloc-c" in error.message
    assert error.expected == "3 votes"
    assert error.actual == "2 votes from bloc-a, bloc-b"


def test_insufficient_approvals_wrong_action(parties: Parties) -> None:
    """Approvals of an extension never count toward an install of the same bytes."""
    state = parties.state()
    payload = parties.update(1)
    approvals = parties.approve(payload, approvers=BLOCS[:2]) + parties.approve(
        payload, Action.EXTEND, approvers=BLOCS[2:]
    )
    with pytest.raises(Rejected) as exc:
        install(state, payload, approvals, START)
    error = rejected(exc, Reason.INSUFFICIENT_APPROVALS)
    assert "bloc-c approved extend, not install" in error.message


def test_insufficient_approvals_empty(parties: Parties) -> None:
    state = parties.state()
    payload = parties.update(1)
    with pytest.raises(Rejected) as exc:
        install(state, payload, [], START)
    error = rejected(exc, Reason.INSUFFICIENT_APPROVALS)
    assert error.actual == "0 votes from nobody"


def test_digest_mismatch_altered_update(parties: Parties) -> None:
    state = parties.state()
    payload = parties.update(1)
    approvals = parties.approve(payload)
    altered = payload.replace(b'"1000000"', b'"9000000"')
    assert altered != payload
    with pytest.raises(Rejected) as exc:
        install(state, altered, approvals, START)
    error = rejected(exc, Reason.DIGEST_MISMATCH)
    assert error.expected == sha256_digest(altered)
    assert error.actual == sha256_digest(payload)


def test_rollback_older_version(parties: Parties) -> None:
    state = parties.state()
    v2 = parties.update(2)
    state, _ = install(state, v2, parties.approve(v2), START)
    v1 = parties.update(1)
    with pytest.raises(Rejected) as exc:
        install(state, v1, parties.approve(v1), START + 1)
    error = rejected(exc, Reason.ROLLBACK)
    assert error.expected == "version > 2"
    assert error.actual == "version 1"


def test_rollback_same_version(parties: Parties) -> None:
    state = parties.state()
    v1 = parties.update(1)
    state, _ = install(state, v1, parties.approve(v1), START)
    again = parties.update(1, description="same version, other bytes")
    with pytest.raises(Rejected) as exc:
        install(state, again, parties.approve(again), START + 1)
    error = rejected(exc, Reason.ROLLBACK)
    assert error.expected == "version > 1"


def test_rollback_extension_serial_replay(parties: Parties) -> None:
    state = parties.state()
    v1 = parties.update(1)
    state, _ = install(state, v1, parties.approve(v1), START)
    first = parties.extension(v1, serial=2, add=DAY)
    state, _ = extend(state, first, parties.approve(first, Action.EXTEND), START + 1)
    stale = parties.extension(v1, serial=1, add=2 * DAY)
    with pytest.raises(Rejected) as exc:
        extend(state, stale, parties.approve(stale, Action.EXTEND), START + 2)
    error = rejected(exc, Reason.ROLLBACK)
    assert error.expected == "serial > 2"
    assert error.actual == "serial 1"


def test_rollback_extension_shortens(parties: Parties) -> None:
    state = parties.state()
    v1 = parties.update(1)
    state, _ = install(state, v1, parties.approve(v1), START)
    longer = parties.extension(v1, serial=1, add=2 * DAY)
    state, _ = extend(state, longer, parties.approve(longer, Action.EXTEND), START + 1)
    shorter = parties.extension(v1, serial=2, add=DAY)
    with pytest.raises(Rejected) as exc:
        extend(state, shorter, parties.approve(shorter, Action.EXTEND), START + 2)
    error = rejected(exc, Reason.ROLLBACK)
    assert "move the expiry forward" in error.message


def test_expired_update_at_install(parties: Parties) -> None:
    state = parties.state()
    payload = parties.update(1, issued_at=START - 10 * DAY, lifetime=DAY)
    with pytest.raises(Rejected) as exc:
        install(state, payload, parties.approve(payload), START)
    error = rejected(exc, Reason.EXPIRED)
    assert error.expected == f"device time < {START - 9 * DAY}"
    assert error.actual == f"device time {START}"


def test_expired_update_boundary(parties: Parties) -> None:
    """An update is dead at the tick ``not_after`` itself."""
    state = parties.state()
    payload = parties.update(1, issued_at=START - DAY, lifetime=DAY)
    with pytest.raises(Rejected) as exc:
        install(state, payload, parties.approve(payload), START)
    rejected(exc, Reason.EXPIRED)


def test_expired_update_cannot_be_extended(parties: Parties) -> None:
    state = parties.state()
    v1 = parties.update(1, lifetime=DAY)
    state, _ = install(state, v1, parties.approve(v1), START)
    late = parties.extension(v1, serial=1, add=DAY)
    with pytest.raises(Rejected) as exc:
        extend(state, late, parties.approve(late, Action.EXTEND), START + DAY)
    error = rejected(exc, Reason.EXPIRED)
    assert error.expected == f"device time < {START + DAY}"
    assert error.actual == f"device time {START + DAY}"


def test_extension_exceeds_cap(parties: Parties) -> None:
    state = parties.state()
    v1 = parties.update(1)
    state, _ = install(state, v1, parties.approve(v1), START)
    too_long = parties.extension(v1, serial=1, add=31 * DAY)
    with pytest.raises(Rejected) as exc:
        extend(state, too_long, parties.approve(too_long, Action.EXTEND), START + 1)
    error = rejected(exc, Reason.EXTENSION_EXCEEDS_CAP)
    assert error.expected == f"at most {30 * DAY} s in total"
    assert error.actual == f"{31 * DAY} s"


def test_extension_cap_is_cumulative(parties: Parties) -> None:
    """Two extensions inside the cap each, but beyond it together, are rejected."""
    state = parties.state()
    v1 = parties.update(1)
    state, _ = install(state, v1, parties.approve(v1), START)
    first = parties.extension(v1, serial=1, add=20 * DAY)
    state, _ = extend(state, first, parties.approve(first, Action.EXTEND), START + 1)
    second = parties.extension(v1, serial=2, add=40 * DAY)
    with pytest.raises(Rejected) as exc:
        extend(state, second, parties.approve(second, Action.EXTEND), START + 2)
    error = rejected(exc, Reason.EXTENSION_EXCEEDS_CAP)
    assert error.actual == f"{40 * DAY} s"
    assert state.installed is not None
    assert state.installed.extended_by == 20 * DAY


def test_extension_mismatch_other_update(parties: Parties) -> None:
    state = parties.state()
    v1 = parties.update(1)
    v2 = parties.update(2)
    state, _ = install(state, v2, parties.approve(v2), START)
    other = parties.extension(v1, serial=1, add=DAY)
    with pytest.raises(Rejected) as exc:
        extend(state, other, parties.approve(other, Action.EXTEND), START + 1)
    error = rejected(exc, Reason.EXTENSION_MISMATCH)
    assert error.expected == sha256_digest(v2)
    assert error.actual == sha256_digest(v1)


def test_extension_mismatch_nothing_installed(parties: Parties) -> None:
    state = parties.state()
    v1 = parties.update(1)
    extension = parties.extension(v1, serial=1, add=DAY)
    with pytest.raises(Rejected) as exc:
        extend(state, extension, parties.approve(extension, Action.EXTEND), START)
    error = rejected(exc, Reason.EXTENSION_MISMATCH)
    assert error.expected == "an installed update"


def test_extension_mismatch_wrong_version(parties: Parties) -> None:
    """An extension bound to the installed digest must also name the installed version."""
    state = parties.state()
    v1 = parties.update(1)
    state, _ = install(state, v1, parties.approve(v1), START)
    extension = parties.extension(v1, serial=1, add=DAY, version=7)
    with pytest.raises(Rejected) as exc:
        extend(state, extension, parties.approve(extension, Action.EXTEND), START + 1)
    error = rejected(exc, Reason.EXTENSION_MISMATCH)
    assert error.expected == "version 1"
    assert error.actual == "version 7"


def test_succession_max_lifetime(parties: Parties) -> None:
    rules = {**CAPPED, "succession": [{"kind": "max-lifetime", "seconds": 10 * DAY}]}
    state = parties.state()
    v1 = parties.update(1, rules=rules)
    state, _ = install(state, v1, parties.approve(v1), START)
    v2 = parties.update(2, lifetime=11 * DAY)
    with pytest.raises(Rejected) as exc:
        install(state, v2, parties.approve(v2), START + 1)
    error = rejected(exc, Reason.SUCCESSION_RULE_VIOLATED)
    assert error.expected == f"lifetime <= {10 * DAY} s"
    assert error.actual == f"{11 * DAY} s"


def test_succession_max_lifetime_counts_from_now(parties: Parties) -> None:
    """A successor dated in the future cannot stay active past the predecessor's lifetime limit."""
    rules = {**CAPPED, "succession": [{"kind": "max-lifetime", "seconds": 10 * DAY}]}
    state = parties.state()
    v1 = parties.update(1, rules=rules)
    state, _ = install(state, v1, parties.approve(v1), START)
    v2 = parties.update(2, issued_at=START + 5 * DAY, lifetime=10 * DAY)
    with pytest.raises(Rejected) as exc:
        install(state, v2, parties.approve(v2), START)
    error = rejected(exc, Reason.SUCCESSION_RULE_VIOLATED)
    assert error.expected == f"lifetime <= {10 * DAY} s"
    assert error.actual == f"{15 * DAY} s"


def test_succession_keep_rule(parties: Parties) -> None:
    rules = {**CAPPED, "succession": [{"kind": "keep-rule", "rule": "training-cap"}]}
    state = parties.state()
    v1 = parties.update(1, rules=rules)
    state, _ = install(state, v1, parties.approve(v1), START)
    weakened = {**CAPPED, "rules": CAPPED["rules"][1:]}
    v2 = parties.update(2, rules=weakened)
    with pytest.raises(Rejected) as exc:
        install(state, v2, parties.approve(v2), START + 1)
    error = rejected(exc, Reason.SUCCESSION_RULE_VIOLATED)
    assert error.expected == "rule 'training-cap' unchanged"
    assert error.actual == "changed or removed"


def test_succession_cap_not_higher(parties: Parties) -> None:
    rules = {**CAPPED, "succession": [{"kind": "cap-not-higher", "cap": "training_flop"}]}
    state = parties.state()
    v1 = parties.update(1, rules=rules)
    state, _ = install(state, v1, parties.approve(v1), START)
    raised = {**CAPPED, "caps": {"training_flop": "2000000"}}
    v2 = parties.update(2, rules=raised)
    with pytest.raises(Rejected) as exc:
        install(state, v2, parties.approve(v2), START + 1)
    error = rejected(exc, Reason.SUCCESSION_RULE_VIOLATED)
    assert error.expected == "training_flop <= 1000000"
    assert error.actual == "2000000"


def test_succession_agreement_max_lifetime(parties: Parties) -> None:
    state = parties.state()
    payload = parties.update(1, lifetime=91 * DAY)
    with pytest.raises(Rejected) as exc:
        install(state, payload, parties.approve(payload), START)
    error = rejected(exc, Reason.SUCCESSION_RULE_VIOLATED)
    assert error.expected == f"lifetime <= {90 * DAY} s"
    assert error.actual == f"{91 * DAY} s"


def test_succession_issued_in_future(parties: Parties) -> None:
    """An update dated in the future cannot stay active beyond the agreement's maximum lifetime."""
    state = parties.state()
    payload = parties.update(1, issued_at=START + 365 * DAY, lifetime=30 * DAY)
    with pytest.raises(Rejected) as exc:
        install(state, payload, parties.approve(payload), START)
    error = rejected(exc, Reason.SUCCESSION_RULE_VIOLATED)
    assert error.expected == f"not_after <= {START + 90 * DAY}"
    assert error.actual == f"not_after {START + 395 * DAY}"


def test_device_disabled_after_tamper(parties: Parties, tmp_path: Path) -> None:
    device = parties.provision(tmp_path / "dev", FakeClock())
    device.emulator_tamper("lid")
    payload = parties.update(1)
    with pytest.raises(Rejected) as exc:
        device.install(payload, parties.approve(payload))
    error = rejected(exc, Reason.DEVICE_DISABLED)
    assert error.expected == "an enabled device"
    assert error.actual == "disabled"
    assert not (tmp_path / "dev" / "seal.key").exists()
    assert not (tmp_path / "dev" / "identity.pem").exists()


def test_device_disabled_pure() -> None:
    parties = Parties()
    payload = parties.update(1)
    with pytest.raises(Rejected) as exc:
        install(None, payload, parties.approve(payload), START)
    rejected(exc, Reason.DEVICE_DISABLED)


def test_workload_denied_unknown_run(parties: Parties) -> None:
    state = parties.state()
    with pytest.raises(Rejected) as exc:
        meter(state, "never-admitted", 10, START)
    error = rejected(exc, Reason.WORKLOAD_DENIED)
    assert error.expected == "an admitted run"
    assert error.actual == "never-admitted"


def test_workload_denied_over_cap(parties: Parties, tmp_path: Path) -> None:
    device = parties.provision(tmp_path / "dev", FakeClock())
    v1 = parties.update(1)
    device.install(v1, parties.approve(v1))
    assert device.admit(workload("run-a", 600_000)).decision.allowed
    result = device.admit(workload("run-a", 600_000))
    assert not result.decision.allowed
    assert result.decision.rule == "training-cap"
    assert result.flop_total == 600_000


def test_rejection_leaves_state_unchanged(parties: Parties, tmp_path: Path) -> None:
    device = parties.provision(tmp_path / "dev", FakeClock())
    before = device.store.state_path.read_bytes()
    payload = parties.update(1)
    with pytest.raises(Rejected):
        device.install(payload, parties.approve(payload, approvers=BLOCS[:1]))
    assert device.store.state_path.read_bytes() == before


def test_stored_payload_round_trips(parties: Parties, tmp_path: Path) -> None:
    device = parties.provision(tmp_path / "dev", FakeClock())
    payload = parties.update(1)
    device.install(payload, parties.approve(payload))
    state = Device(tmp_path / "dev", host_clock=FakeClock()).state()
    assert state is not None
    assert state.installed is not None
    assert state.installed.payload == payload
    assert base64.b64encode(payload).decode() in device.store.state_path.read_text()
