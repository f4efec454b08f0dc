"""Equivocation proofs: each kind proves misbehaviour, and near-misses prove nothing."""

from __future__ import annotations

import json

import pytest

from flexheg.authority._approver import sign_approval
from flexheg.device import LifetimeExtension
from flexheg.errors import InputError, Reason, Rejected
from flexheg.policy import Action
from flexheg.rules import Ruleset, RulesetUpdate, parse_rule
from flexheg.translog.equivocation import (
    SerialReuseProof,
    StaleExtensionProof,
    parse_proof,
    proof_to_json,
    scan_entries,
    verify_equivocation,
)
from flexheg.wire import Envelope, SigningKey, sha256_digest

KEY = SigningKey.generate()
AGREEMENT = sha256_digest(b"agreement")
RULES = Ruleset(
    [parse_rule({"id": "all", "effect": "allow", "when": "true", "reason": "test"}, caps={}, where="test")]
)
V1 = RulesetUpdate(AGREEMENT, 1, 1_800_000_000, 86400, RULES).encode()
V2 = RulesetUpdate(AGREEMENT, 2, 1_800_000_000, 86400, RULES).encode()
EXT1 = LifetimeExtension(AGREEMENT, sha256_digest(V1), 1, 1, 1_800_000_000 + 2 * 86400).encode()


def approve(
    subject: bytes,
    serial: int,
    action: Action = Action.INSTALL,
    *,
    key: SigningKey = KEY,
    approver: str = "bloc-a",
    time: int = 5,
) -> bytes:
    return sign_approval(
        key,
        approver=approver,
        agreement=AGREEMENT,
        action=action,
        subject=sha256_digest(subject),
        serial=serial,
        now=time,
    ).to_json()


def serial_reuse(first: bytes, second: bytes) -> SerialReuseProof:
    return SerialReuseProof(
        KEY.public, Envelope.from_json(first, what="a"), Envelope.from_json(second, what="b")
    )


def stale(newer: bytes, newer_subject: bytes, ext: bytes, ext_subject: bytes) -> StaleExtensionProof:
    return StaleExtensionProof(
        KEY.public,
        Envelope.from_json(newer, what="a"),
        newer_subject,
        Envelope.from_json(ext, what="b"),
        ext_subject,
    )


def test_serial_reuse_proven() -> None:
    proof = serial_reuse(approve(V1, 3), approve(EXT1, 3, Action.EXTEND))
    finding = verify_equivocation(proof_to_json(proof))
    assert finding.kind == "serial-reuse"
    assert finding.party == "bloc-a"
    assert finding.details["serial"] == 3


def test_serial_reuse_round_trip() -> None:
    proof = serial_reuse(approve(V1, 3), approve(V2, 3))
    assert parse_proof(proof_to_json(proof)) == proof


def test_same_subject_twice_not_proof() -> None:
    proof = serial_reuse(approve(V1, 3, time=5), approve(V1, 3, time=9))
    with pytest.raises(Rejected) as caught:
        verify_equivocation(proof)
    assert "same action" in caught.value.message


def test_serial_in_two_agreements_not_proof() -> None:
    other = sign_approval(
        KEY,
        approver="bloc-a",
        agreement=sha256_digest(b"another agreement"),
        action=Action.INSTALL,
        subject=sha256_digest(V2),
        serial=3,
        now=5,
    ).to_json()
    with pytest.raises(Rejected, match="different agreements"):
        verify_equivocation(serial_reuse(approve(V1, 3), other))


def test_different_serials_not_proof() -> None:
    with pytest.raises(Rejected, match="different serials"):
        verify_equivocation(serial_reuse(approve(V1, 3), approve(V2, 4)))


def test_other_key_not_proof() -> None:
    forged = approve(V2, 3, key=SigningKey.generate())
    with pytest.raises(Rejected) as caught:
        verify_equivocation(serial_reuse(approve(V1, 3), forged))
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_stale_extension_proven() -> None:
    proof = stale(approve(V2, 4), V2, approve(EXT1, 5, Action.EXTEND), EXT1)
    finding = verify_equivocation(proof_to_json(proof))
    assert finding.kind == "stale-extension"
    assert (finding.details["newer_version"], finding.details["stale_version"]) == (2, 1)


def test_stale_extension_before_newer_not_proof() -> None:
    proof = stale(approve(V2, 4), V2, approve(EXT1, 3, Action.EXTEND), EXT1)
    with pytest.raises(Rejected, match="not signed after"):
        verify_equivocation(proof)


def test_stale_extension_wrong_subject_bytes() -> None:
    proof = stale(approve(V2, 4), V1, approve(EXT1, 5, Action.EXTEND), EXT1)
    with pytest.raises(Rejected) as caught:
        verify_equivocation(proof)
    assert caught.value.reason is Reason.DIGEST_MISMATCH


def test_extension_of_newest_not_proof() -> None:
    ext2 = LifetimeExtension(AGREEMENT, sha256_digest(V2), 2, 1, 1_800_000_000 + 2 * 86400).encode()
    proof = stale(approve(V2, 4), V2, approve(ext2, 5, Action.EXTEND), ext2)
    with pytest.raises(Rejected, match="not older"):
        verify_equivocation(proof)


def test_unknown_kind_is_input_error() -> None:
    with pytest.raises(InputError, match="unknown kind"):
        parse_proof(json.dumps({"type": "flexheg.dev/equivocation-proof/v1", "kind": "nonsense"}).encode())


def test_scan_finds_both_kinds() -> None:
    entries = [
        V1,
        V2,
        EXT1,
        approve(V1, 0),
        approve(V2, 1),
        approve(EXT1, 1, Action.EXTEND),
        approve(EXT1, 2, Action.EXTEND),
    ]
    proofs = scan_entries(entries, {"bloc-a": KEY.public})
    kinds = sorted(p.KIND for p in proofs)
    assert kinds == ["serial-reuse", "stale-extension"]
    for proof in proofs:
        verify_equivocation(proof)


def test_scan_ignores_honest_history() -> None:
    entries = [
        V1,
        V2,
        approve(V1, 0),
        approve(V2, 1),
        approve(
            LifetimeExtension(AGREEMENT, sha256_digest(V2), 2, 1, 1_800_000_000 + 3 * 86400).encode(),
            2,
            Action.EXTEND,
        ),
    ]
    assert scan_entries(entries, {"bloc-a": KEY.public}) == []
