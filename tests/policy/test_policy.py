"""Approval policies: counting by distinct approver, fail-closed evaluation and strict parsing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexheg.errors import InputError, Reason, Rejected
from flexheg.policy import (
    Action,
    Approval,
    Approver,
    ApproverKey,
    Policy,
    VerifiedApproval,
    check_approver_set,
    evaluate,
    require,
    verify_approvals,
)
from flexheg.wire import Envelope, PublicKey, SigningKey, encode, parse_statement

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

AGREEMENT = "sha256:" + "a" * 64
SUBJECT = "sha256:" + "b" * 64
KEYS = {name: SigningKey.generate() for name in ("a", "b", "c", "d", "e")}
NOW = 1000


def approvers(votes: dict[str, int] | None = None) -> tuple[Approver, ...]:
    votes = votes or dict.fromkeys(KEYS, 1)
    return tuple(Approver(name, count, (ApproverKey(KEYS[name].public),)) for name, count in votes.items())


def verified(name: str, action: Action = Action.INSTALL, keyid: str | None = None) -> VerifiedApproval:
    approval = Approval(AGREEMENT, action, SUBJECT, name, 1, NOW)
    return VerifiedApproval(approval, keyid or KEYS[name].keyid)


def signed(name: str, key: SigningKey | None = None, subject: str = SUBJECT) -> Envelope:
    return Envelope.sign(Approval(AGREEMENT, Action.INSTALL, subject, name, 1, NOW), key or KEYS[name])


# Counting.


@SETTINGS
@given(
    st.lists(st.sampled_from(sorted(KEYS)), max_size=15),
    st.dictionaries(st.sampled_from(sorted(KEYS)), st.integers(1, 5), min_size=1),
    st.sampled_from(["all", "majority", "weighted"]),
    st.integers(1, 25),
)
def test_counts_distinct_approvers(
    signers: list[str], votes: dict[str, int], kind: str, threshold: int
) -> None:
    members = approvers(votes)
    policy = Policy(kind, threshold if kind == "weighted" else 0)
    result = evaluate(policy, members, [verified(n) for n in signers], action=Action.INSTALL, now=NOW)

    distinct = {n for n in signers if n in votes}
    assert set(result.signed) == distinct
    assert set(result.missing) == set(votes) - distinct
    assert result.votes_present == sum(votes[n] for n in distinct)
    assert result.satisfied == (result.votes_present >= policy.votes_needed(members))


@SETTINGS
@given(st.lists(st.sampled_from(sorted(KEYS)), max_size=15), st.integers(1, 4))
def test_repeating_approvals_changes_nothing(signers: list[str], copies: int) -> None:
    members = approvers()
    policy = Policy("majority")
    once = evaluate(policy, members, [verified(n) for n in signers], action=Action.INSTALL, now=NOW)
    repeated = evaluate(
        policy, members, [verified(n) for n in signers] * copies, action=Action.INSTALL, now=NOW
    )
    assert repeated.signed == once.signed
    assert repeated.votes_present == once.votes_present
    assert repeated.satisfied == once.satisfied


def test_votes_needed_by_kind() -> None:
    members = approvers({"a": 2, "b": 1, "c": 1})
    assert Policy("all").votes_needed(members) == 4
    assert Policy("majority").votes_needed(members) == 3
    assert Policy("weighted", 2).votes_needed(members) == 2


def test_heavy_approver_alone_meets_weighted_policy() -> None:
    members = approvers({"a": 3, "b": 1, "c": 1})
    result = evaluate(Policy("weighted", 3), members, [verified("a")], action=Action.INSTALL, now=NOW)
    assert result.satisfied
    assert result.describe() == "1 of 3 approvers signed (3 of 3 votes needed); missing: b, c"


def test_empty_approver_set_fails_closed() -> None:
    for kind in ("all", "majority"):
        result = evaluate(Policy(kind), (), [], action=Action.INSTALL, now=NOW)
        assert not result.satisfied


def test_no_approvals_never_satisfy() -> None:
    for policy in (Policy("all"), Policy("majority"), Policy("weighted", 1)):
        assert not evaluate(policy, approvers(), [], action=Action.INSTALL, now=NOW).satisfied


def test_other_action_not_counted() -> None:
    result = evaluate(
        Policy("weighted", 1), approvers(), [verified("a", Action.EXTEND)], action=Action.INSTALL, now=NOW
    )
    assert not result.satisfied
    assert result.not_counted == ("a approved extend, not install",)


def test_stranger_not_counted() -> None:
    result = evaluate(
        Policy("weighted", 1), approvers({"a": 1}), [verified("b")], action=Action.INSTALL, now=NOW
    )
    assert not result.satisfied
    assert result.not_counted == ("b is not an approver",)


@pytest.mark.parametrize(
    ("valid_from", "valid_until", "now", "counted"),
    [
        (None, None, NOW, True),
        (None, NOW, NOW, True),
        (None, NOW - 1, NOW, False),
        (NOW, None, NOW, True),
        (NOW + 1, None, NOW, False),
        (NOW - 10, NOW + 10, NOW, True),
    ],
)
def test_key_window(valid_from: int | None, valid_until: int | None, now: int, counted: bool) -> None:
    members = (Approver("a", 1, (ApproverKey(KEYS["a"].public, valid_from, valid_until),)),)
    result = evaluate(Policy("all"), members, [verified("a")], action=Action.INSTALL, now=now)
    assert result.satisfied is counted


def test_require_message_shows_expected_and_actual() -> None:
    result = evaluate(
        Policy("all"), approvers({"a": 1, "b": 1, "c": 1}), [verified("a")], action=Action.INSTALL, now=NOW
    )
    with pytest.raises(Rejected) as exc:
        require(result, action=Action.INSTALL)
    assert exc.value.reason is Reason.INSUFFICIENT_APPROVALS
    assert (
        exc.value.message
        == "install needs more approvals: 1 of 3 approvers signed (1 of 3 votes needed); missing: b, c"
    )
    assert exc.value.expected == "3 votes"
    assert exc.value.actual == "1 votes from a"


# Verification of approval envelopes.


def test_verify_approvals_accepts_genuine() -> None:
    result = verify_approvals(
        [signed("a"), signed("b")], approvers(), agreement=AGREEMENT, action=Action.INSTALL, subject=SUBJECT
    )
    assert [v.approval.approver for v in result] == ["a", "b"]
    assert [v.keyid for v in result] == [KEYS["a"].keyid, KEYS["b"].keyid]


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (signed("a", KEYS["b"]), Reason.UNKNOWN_SIGNER),
        (signed("z", KEYS["a"]), Reason.UNKNOWN_SIGNER),
        (signed("a", subject="sha256:" + "c" * 64), Reason.DIGEST_MISMATCH),
        (Envelope(b"{}", "application/vnd.flexheg.statement+json", ()), Reason.MALFORMED),
    ],
)
def test_verify_approvals_rejects(envelope: Envelope, reason: Reason) -> None:
    with pytest.raises(Rejected) as exc:
        verify_approvals([envelope], approvers(), agreement=AGREEMENT, action=Action.INSTALL, subject=SUBJECT)
    assert exc.value.reason is reason


def test_verify_approvals_rejects_other_agreement() -> None:
    other = Envelope.sign(Approval("sha256:" + "f" * 64, Action.INSTALL, SUBJECT, "a", 1, NOW), KEYS["a"])
    with pytest.raises(Rejected) as exc:
        verify_approvals([other], approvers(), agreement=AGREEMENT, action=Action.INSTALL, subject=SUBJECT)
    assert exc.value.reason is Reason.WRONG_AGREEMENT
    assert exc.value.expected == AGREEMENT


def test_unsigned_approval_is_unknown_signer() -> None:
    bare = Envelope(signed("a").payload, "application/vnd.flexheg.statement+json", ())
    with pytest.raises(Rejected) as exc:
        verify_approvals([bare], approvers(), agreement=AGREEMENT, action=Action.INSTALL, subject=SUBJECT)
    assert exc.value.reason is Reason.UNKNOWN_SIGNER
    assert exc.value.actual == "no signatures"


# Parsing.


def test_approver_set_checks() -> None:
    with pytest.raises(InputError, match="empty"):
        check_approver_set((), where="approvers")
    with pytest.raises(InputError, match="appears twice"):
        check_approver_set(approvers({"a": 1}) * 2, where="approvers")
    shared = (
        Approver("a", 1, (ApproverKey(KEYS["a"].public),)),
        Approver("b", 1, (ApproverKey(KEYS["a"].public),)),
    )
    with pytest.raises(InputError, match="same public key is listed twice"):
        check_approver_set(shared, where="approvers")
    alias = PublicKey("alias", KEYS["a"].public.key)
    check_approver_set(
        (Approver("a", 1, (ApproverKey(KEYS["a"].public), ApproverKey(alias))),), where="approvers"
    )


@pytest.mark.parametrize(
    ("text", "policy"),
    [("all", Policy("all")), ("majority", Policy("majority")), ("weighted:3", Policy("weighted", 3))],
)
def test_policy_parse(text: str, policy: Policy) -> None:
    assert Policy.parse(text) == policy
    assert Policy.from_dict(policy.to_dict(), where="policy") == policy


@pytest.mark.parametrize("text", ["", "any", "weighted", "weighted:0", "weighted:-1", "weighted:x", "ALL"])
def test_policy_parse_rejects(text: str) -> None:
    with pytest.raises(InputError, match="invalid"):
        Policy.parse(text)


@pytest.mark.parametrize(
    "document",
    [
        {"kind": "quorum"},
        {"kind": "weighted"},
        {"kind": "weighted", "threshold": 0},
        {"kind": "all", "threshold": 2},
    ],
)
def test_policy_from_dict_rejects(document: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        Policy.from_dict(document, where="policy")


def test_approver_round_trip() -> None:
    approver = Approver("a", 2, (ApproverKey(KEYS["a"].public, 5, 10), ApproverKey(KEYS["b"].public)))
    assert Approver.from_dict(approver.to_dict(), where="approver") == approver


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"votes": 0}, "below the minimum"),
        ({"keys": []}, "has no keys"),
        ({"id": ""}, "must not be empty"),
        ({"weight": 1}, "unknown field"),
    ],
)
def test_approver_from_dict_rejects(change: dict[str, Any], message: str) -> None:
    document = {**Approver("a", 1, (ApproverKey(KEYS["a"].public),)).to_dict(), **change}
    with pytest.raises(InputError, match=message):
        Approver.from_dict(document, where="approver")


def test_key_window_order_checked() -> None:
    document = ApproverKey(KEYS["a"].public, 10, 5).to_dict()
    with pytest.raises(InputError, match="before valid_from"):
        ApproverKey.from_dict(document, where="key")


@SETTINGS
@given(
    st.sampled_from(Action),
    st.integers(0, 2**53 - 1),
    st.integers(0, 2**53 - 1),
    st.text(min_size=1, max_size=10),
    st.lists(st.text(min_size=1, max_size=5), max_size=3),
)
def test_approval_round_trip(
    action: Action, serial: int, time: int, approver: str, overrides: list[str]
) -> None:
    approval = Approval(AGREEMENT, action, SUBJECT, approver, serial, time, tuple(overrides))
    assert parse_statement(encode(approval.to_dict()), Approval, what="approval") == approval
