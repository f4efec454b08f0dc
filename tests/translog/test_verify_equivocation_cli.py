"""``flexheg verify equivocation`` accepts only proofs that use the agreement's own keys."""

from __future__ import annotations

from pathlib import Path

from _parties import START, Parties, run_cli
from flexheg.authority import sign_approval
from flexheg.policy import Action
from flexheg.translog.equivocation import SerialReuseProof, proof_to_json
from flexheg.wire import Envelope, SigningKey, sha256_digest


def _approval(parties: Parties, key: SigningKey, subject: bytes, serial: int) -> Envelope:
    return sign_approval(
        key,
        approver="bloc-c",
        agreement=parties.agreement_digest,
        action=Action.INSTALL,
        subject=sha256_digest(subject),
        serial=serial,
        now=START,
    )


def _write(tmp_path: Path, parties: Parties, key: SigningKey) -> tuple[Path, Path]:
    proof = SerialReuseProof(
        key.public,
        _approval(parties, key, parties.update(1), 4),
        _approval(parties, key, parties.update(2), 4),
    )
    proof_path = tmp_path / "proof.json"
    proof_path.write_bytes(proof_to_json(proof))
    agreement_path = tmp_path / "agreement.json"
    agreement_path.write_bytes(parties.agreement_payload)
    return proof_path, agreement_path


def test_proof_with_agreement_key_is_proven(tmp_path: Path) -> None:
    parties = Parties()
    proof_path, agreement_path = _write(tmp_path, parties, parties.keys["bloc-c"])
    code, document, _ = run_cli("verify", "equivocation", proof_path, "--agreement", agreement_path)
    assert code == 0
    assert document["kind"] == "serial-reuse"
    assert document["party"] == "bloc-c"


def test_proof_with_foreign_key_is_rejected(tmp_path: Path) -> None:
    parties = Parties()
    proof_path, agreement_path = _write(tmp_path, parties, SigningKey.generate())
    code, document, _ = run_cli("verify", "equivocation", proof_path, "--agreement", agreement_path)
    assert code == 1
    assert document["reason"] == "unknown-signer"


def test_unreadable_proof_is_input_error(tmp_path: Path) -> None:
    parties = Parties()
    _, agreement_path = _write(tmp_path, parties, parties.keys["bloc-c"])
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"{not json")
    code, document, _ = run_cli("verify", "equivocation", garbage, "--agreement", agreement_path)
    assert code == 2
    assert document["ok"] is False
