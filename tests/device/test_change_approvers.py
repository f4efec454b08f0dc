"""Changing the approver set: the old and the new set must both approve, epochs never repeat."""

from __future__ import annotations

import pytest

from _parties import START, Parties
from flexheg.authority import sign_approval
from flexheg.device import ApproverSetChange, DeviceState, change_approvers, install
from flexheg.errors import Reason, Rejected
from flexheg.policy import Action, Approver, ApproverKey
from flexheg.wire import Envelope, SigningKey, sha256_digest


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


@pytest.fixture(scope="module")
def newcomer() -> SigningKey:
    return SigningKey.generate()


def new_set(parties: Parties, newcomer: SigningKey) -> tuple[Approver, ...]:
    """bloc-c leaves, bloc-d joins."""
    kept = tuple(Approver(b, 1, (ApproverKey(parties.keys[b].public),)) for b in ("bloc-a", "bloc-b"))
    return (*kept, Approver("bloc-d", 1, (ApproverKey(newcomer.public),)))


def change(parties: Parties, newcomer: SigningKey, epoch: int = 1) -> bytes:
    return ApproverSetChange(parties.agreement_digest, epoch, new_set(parties, newcomer)).encode()


def approvals(
    parties: Parties, newcomer: SigningKey, payload: bytes, signers: tuple[str, ...]
) -> list[Envelope]:
    envelopes = parties.approve(payload, Action.CHANGE_APPROVERS, [s for s in signers if s != "bloc-d"])
    if "bloc-d" in signers:
        envelopes.append(
            sign_approval(
                newcomer,
                approver="bloc-d",
                agreement=parties.agreement_digest,
                action=Action.CHANGE_APPROVERS,
                subject=sha256_digest(payload),
                serial=1,
                now=START,
            )
        )
    return envelopes


def test_change_needs_old_and_new_set(parties: Parties, newcomer: SigningKey) -> None:
    state = parties.state()
    payload = change(parties, newcomer)
    signers = ("bloc-a", "bloc-b", "bloc-c", "bloc-d")
    new_state, result = change_approvers(
        state, payload, approvals(parties, newcomer, payload, signers), START
    )
    assert result.epoch == 1
    assert result.approvers == ("bloc-a", "bloc-b", "bloc-d")
    assert new_state.approver_epoch == 1
    assert [a.id for a in new_state.current_approvers] == ["bloc-a", "bloc-b", "bloc-d"]


@pytest.mark.parametrize(
    ("signers", "missing"),
    [(("bloc-a", "bloc-b", "bloc-d"), "bloc-c"), (("bloc-a", "bloc-b", "bloc-c"), "bloc-d")],
)
def test_change_without_a_set_is_rejected(
    parties: Parties, newcomer: SigningKey, signers: tuple[str, ...], missing: str
) -> None:
    state = parties.state()
    payload = change(parties, newcomer)
    with pytest.raises(Rejected) as exc:
        change_approvers(state, payload, approvals(parties, newcomer, payload, signers), START)
    assert exc.value.reason is Reason.INSUFFICIENT_APPROVALS
    assert missing in exc.value.message


def test_change_epoch_cannot_repeat(parties: Parties, newcomer: SigningKey) -> None:
    state = parties.state()
    payload = change(parties, newcomer)
    signers = ("bloc-a", "bloc-b", "bloc-c", "bloc-d")
    envelopes = approvals(parties, newcomer, payload, signers)
    changed, _ = change_approvers(state, payload, envelopes, START)
    with pytest.raises(Rejected) as exc:
        change_approvers(changed, payload, envelopes, START)
    assert exc.value.reason is Reason.ROLLBACK
    assert exc.value.expected == "epoch 2"


def test_installs_follow_the_new_set(parties: Parties, newcomer: SigningKey) -> None:
    state: DeviceState = parties.state()
    payload = change(parties, newcomer)
    signers = ("bloc-a", "bloc-b", "bloc-c", "bloc-d")
    changed, _ = change_approvers(state, payload, approvals(parties, newcomer, payload, signers), START)
    update = parties.update(1)

    with pytest.raises(Rejected) as exc:
        install(changed, update, parties.approve(update), START)
    assert exc.value.reason is Reason.UNKNOWN_SIGNER

    new_approvals = [
        *parties.approve(update, Action.INSTALL, ["bloc-a", "bloc-b"]),
        sign_approval(
            newcomer,
            approver="bloc-d",
            agreement=parties.agreement_digest,
            action=Action.INSTALL,
            subject=sha256_digest(update),
            serial=2,
            now=START,
        ),
    ]
    installed, result = install(changed, update, new_approvals, START)
    assert result.approvals.signed == ("bloc-a", "bloc-b", "bloc-d")
    assert installed.highest_version == 1


def test_state_codec_keeps_the_new_set(parties: Parties, newcomer: SigningKey) -> None:
    state = parties.state()
    payload = change(parties, newcomer)
    signers = ("bloc-a", "bloc-b", "bloc-c", "bloc-d")
    changed, _ = change_approvers(state, payload, approvals(parties, newcomer, payload, signers), START)
    restored = DeviceState.from_dict(changed.to_dict())
    assert restored.approver_epoch == 1
    assert restored.current_approvers == changed.current_approvers
