"""Approval policies and their evaluation.

A policy names the approvers who must consent to an action. Evaluation counts *distinct approvers*
whose approval is valid: never signature entries, key ids or envelopes. An approver whose key is
listed under two key ids, or who signed the same approval twice, still counts once.

Invariants:

* An empty approver set never satisfies a policy (fail closed).
* An approval counts only if its key is inside its validity window at the evaluation time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flexheg.errors import InputError, Reason, Rejected
from flexheg.policy._approval import Action, Approval
from flexheg.wire import Envelope, Fields, PublicKey


@dataclass(frozen=True)
class ApproverKey:
    """A public key of an approver, with an optional validity window in device ticks."""

    key: PublicKey
    valid_from: int | None = None
    valid_until: int | None = None

    def valid_at(self, now: int) -> bool:
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_until is None or now <= self.valid_until

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"key": self.key.to_dict()}
        if self.valid_from is not None:
            result["valid_from"] = self.valid_from
        if self.valid_until is not None:
            result["valid_until"] = self.valid_until
        return result

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> ApproverKey:
        fields = Fields(value, where)
        key = PublicKey.from_dict(fields.raw("key"), where=fields.path("key"))
        valid_from = fields.optional_int("valid_from", minimum=0)
        valid_until = fields.optional_int("valid_until", minimum=0)
        fields.done()
        if valid_from is not None and valid_until is not None and valid_until < valid_from:
            raise InputError(f"{where}: valid_until {valid_until} is before valid_from {valid_from}")
        return cls(key, valid_from, valid_until)


@dataclass(frozen=True)
class Approver:
    """An approver state or bloc: an id, its votes and its keys."""

    id: str
    votes: int
    keys: tuple[ApproverKey, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "votes": self.votes, "keys": [k.to_dict() for k in self.keys]}

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Approver:
        fields = Fields(value, where)
        approver_id = fields.str("id")
        votes = fields.int("votes", minimum=1, maximum=1_000_000)
        keys = tuple(
            ApproverKey.from_dict(item, where=f"{fields.path('keys')}[{index}]")
            for index, item in enumerate(fields.list("keys"))
        )
        fields.done()
        if not keys:
            raise InputError(f"{where}: approver {approver_id!r} has no keys; give at least one")
        return cls(approver_id, votes, keys)


def check_approver_set(approvers: Sequence[Approver], *, where: str) -> None:
    """Reject an empty set, duplicate approver ids, and one key listed under two approvers.

    One approver may list the same key under two key ids (for example during a rotation); it
    still counts once, because evaluation counts approvers, not keys.
    """
    if not approvers:
        raise InputError(f"{where}: the approver set is empty; an agreement needs at least one")
    seen_ids: set[str] = set()
    seen_keys: dict[str, str] = {}
    for approver in approvers:
        if approver.id in seen_ids:
            raise InputError(f"{where}: approver id {approver.id!r} appears twice")
        seen_ids.add(approver.id)
        for approver_key in approver.keys:
            material = approver_key.key.key.keyval["public"]
            owner = seen_keys.get(material)
            if owner is not None and owner != approver.id:
                raise InputError(
                    f"{where}: the same public key is listed twice (approvers {owner!r} and "
                    f"{approver.id!r}); one key must count as one approver at most once"
                )
            seen_keys[material] = approver.id


@dataclass(frozen=True)
class Policy:
    """Approval policy: ``all`` approvers, a ``majority`` of votes, or ``weighted`` (k votes)."""

    kind: str
    threshold: int = 0

    KINDS = ("all", "majority", "weighted")

    def votes_needed(self, approvers: Sequence[Approver]) -> int:
        total = sum(a.votes for a in approvers)
        if self.kind == "all":
            return total
        if self.kind == "majority":
            return total // 2 + 1
        return self.threshold

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "weighted":
            return {"kind": "weighted", "threshold": self.threshold}
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Policy:
        fields = Fields(value, where)
        kind = fields.str("kind")
        if kind not in cls.KINDS:
            raise InputError(f"{where}.kind: unknown policy {kind!r}; expected one of {cls.KINDS}")
        threshold = fields.int("threshold", minimum=1) if kind == "weighted" else 0
        fields.done()
        return cls(kind, threshold)

    @classmethod
    def parse(cls, text: str) -> Policy:
        """Parse ``all``, ``majority`` or ``weighted:K`` as written on the command line."""
        if text in ("all", "majority"):
            return cls(text)
        kind, _, number = text.partition(":")
        if kind == "weighted" and number.isdigit() and int(number) > 0:
            return cls("weighted", int(number))
        raise InputError(f"policy {text!r} is invalid; write all, majority or weighted:K (K votes)")


@dataclass(frozen=True)
class PolicyResult:
    """The outcome of evaluating a policy: who signed, who is missing, votes needed and present."""

    satisfied: bool
    signed: tuple[str, ...]
    missing: tuple[str, ...]
    votes_present: int
    votes_needed: int
    not_counted: tuple[str, ...] = ()

    def describe(self) -> str:
        total = len(self.signed) + len(self.missing)
        text = (
            f"{len(self.signed)} of {total} approvers signed "
            f"({self.votes_present} of {self.votes_needed} votes needed)"
        )
        if self.missing:
            text += "; missing: " + ", ".join(self.missing)
        if self.not_counted:
            text += "; not counted: " + "; ".join(self.not_counted)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "satisfied": self.satisfied,
            "signed": list(self.signed),
            "missing": list(self.missing),
            "votes_present": self.votes_present,
            "votes_needed": self.votes_needed,
            "not_counted": list(self.not_counted),
        }


@dataclass(frozen=True)
class VerifiedApproval:
    approval: Approval
    keyid: str


def verify_approvals(
    envelopes: Iterable[Envelope],
    approvers: Sequence[Approver],
    *,
    agreement: str,
    action: Action,
    subject: str,
) -> list[VerifiedApproval]:
    """Check each approval envelope's statement and signature; raise on the first bad one.

    Steps, for every envelope:
      1. parse the payload as an Approval (``malformed``);
      2. it belongs to this agreement (``wrong-agreement``) and this subject (``digest-mismatch``);
      3. its approver and key id are in the approver set (``unknown-signer``);
      4. the approver's key signed it (``bad-signature``).

    Key validity windows and the action are not checked here: an approval outside its key's
    window or for another action is valid but does not count (see :func:`evaluate`).
    """
    by_id = {a.id: a for a in approvers}
    verified: list[VerifiedApproval] = []
    for index, envelope in enumerate(envelopes):
        what = f"approval {index}"

        # Step 1: parse.
        try:
            approval = envelope.statement(Approval, what=what)
        except InputError as exc:
            raise Rejected(Reason.MALFORMED, str(exc)) from None

        # Step 2: agreement and subject binding.
        if approval.agreement != agreement:
            raise Rejected(
                Reason.WRONG_AGREEMENT,
                f"{what} by {approval.approver} is for another agreement",
                expected=agreement,
                actual=approval.agreement,
            )
        if approval.subject != subject:
            raise Rejected(
                Reason.DIGEST_MISMATCH,
                f"{what} by {approval.approver} approves another subject",
                expected=subject,
                actual=approval.subject,
            )

        # Step 3: known approver and key.
        approver = by_id.get(approval.approver)
        if approver is None:
            raise Rejected(
                Reason.UNKNOWN_SIGNER,
                f"{what} names approver {approval.approver!r}, who is not in the agreement",
                expected=", ".join(sorted(by_id)),
                actual=approval.approver,
            )
        keys = {k.key.keyid: k.key for k in approver.keys}
        keyids = [s.keyid for s in envelope.signatures]
        if not any(keyid in keys for keyid in keyids):
            raise Rejected(
                Reason.UNKNOWN_SIGNER,
                f"{what} is not signed by any key of approver {approver.id}",
                expected=", ".join(sorted(keys)),
                actual=", ".join(keyids) or "no signatures",
            )

        # Step 4: signature.
        signers = envelope.verified_by(keys)
        if not signers:
            raise Rejected(
                Reason.BAD_SIGNATURE,
                f"{what}: the signature by approver {approver.id} does not verify",
                expected=f"a valid signature by one of {', '.join(sorted(keys))}",
                actual="invalid signature",
            )
        verified.append(VerifiedApproval(approval, signers[0].keyid))
    return verified


def evaluate(
    policy: Policy,
    approvers: Sequence[Approver],
    approvals: Iterable[VerifiedApproval],
    *,
    action: Action,
    now: int,
) -> PolicyResult:
    """Count distinct approvers with a valid approval for ``action`` whose key is valid at ``now``."""
    by_id: Mapping[str, Approver] = {a.id: a for a in approvers}
    counted: set[str] = set()
    not_counted: list[str] = []
    for verified in approvals:
        approval = verified.approval
        approver = by_id.get(approval.approver)
        if approver is None:
            not_counted.append(f"{approval.approver} is not an approver")
            continue
        if approval.action != action:
            not_counted.append(f"{approver.id} approved {approval.action.value}, not {action.value}")
            continue
        key = next((k for k in approver.keys if k.key.keyid == verified.keyid), None)
        if key is None:
            not_counted.append(
                f"{approver.id} signed with key {verified.keyid[:12]}, which this set does not list"
            )
            continue
        if not key.valid_at(now):
            not_counted.append(
                f"{approver.id} key {verified.keyid[:12]} is not valid at tick {now} "
                f"(window {key.valid_from}..{key.valid_until})"
            )
            continue
        counted.add(approver.id)

    signed = tuple(a.id for a in approvers if a.id in counted)
    missing = tuple(a.id for a in approvers if a.id not in counted)
    votes_present = sum(by_id[i].votes for i in signed)
    votes_needed = policy.votes_needed(approvers)
    satisfied = bool(approvers) and votes_needed > 0 and votes_present >= votes_needed
    return PolicyResult(satisfied, signed, missing, votes_present, votes_needed, tuple(not_counted))


def require(result: PolicyResult, *, action: Action) -> None:
    """Raise ``insufficient-approvals`` unless ``result`` is satisfied."""
    if not result.satisfied:
        raise Rejected(
            Reason.INSUFFICIENT_APPROVALS,
            f"{action.value} needs more approvals: {result.describe()}",
            expected=f"{result.votes_needed} votes",
            actual=f"{result.votes_present} votes from {', '.join(result.signed) or 'nobody'}",
        )
