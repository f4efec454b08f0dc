"""``flexheg verify equivocation FILE``: check a proof of double signing or of a log fork."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flexheg.cli._files import read_bytes, read_statement
from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.device import Agreement
from flexheg.errors import Reason, Rejected
from flexheg.policy import Approval
from flexheg.translog.equivocation import (
    EquivocationProof,
    LogForkProof,
    SerialReuseProof,
    parse_proof,
    verify_equivocation,
)


def _check_trusted(proof: EquivocationProof, agreement: Agreement) -> None:
    """Require the key the proof relies on to be the agreement's key for the accused party."""
    if isinstance(proof, LogForkProof):
        config = agreement.log
        if config is None or config.log_verifier() != proof.log_key:
            raise Rejected(
                Reason.UNKNOWN_SIGNER,
                "the proof's log key is not the log key of the agreement",
                expected=config.key if config else "an agreement with a log",
                actual=proof.log_key.to_vkey(),
            )
        return
    accused = proof.first if isinstance(proof, SerialReuseProof) else proof.newer
    approval = accused.statement(Approval, what="approval")
    keys = {k.key.keyid for a in agreement.approvers if a.id == approval.approver for k in a.keys}
    if proof.approver_key.keyid not in keys:
        raise Rejected(
            Reason.UNKNOWN_SIGNER,
            f"the proof's key is not a key of approver {approval.approver} in the agreement",
            expected=", ".join(sorted(keys)) or f"an approver named {approval.approver}",
            actual=proof.approver_key.keyid,
        )


@handle_errors
def equivocation(
    file: Annotated[Path, typer.Argument(help="Proof file (JSON) from a log monitor or witness.")],
    agreement: Annotated[
        Path, typer.Option(help="The agreement whose approver or log keys the proof must use.")
    ],
    json: JsonOption = False,
) -> None:
    """Check an equivocation proof against the keys of an agreement.

    Exit 0 when the file proves misbehaviour by a party of the agreement (an approver signed two
    approvals under one serial, or extended a version older than one it approved, or the log
    signed two inconsistent checkpoints); 1 when it does not; 2 when a file cannot be read.
    """
    _, parsed_agreement = read_statement(agreement, Agreement)
    data = read_bytes(file, what="equivocation proof")
    proof = parse_proof(data)
    _check_trusted(proof, parsed_agreement)
    finding = verify_equivocation(proof)
    emit(
        {"ok": True, "proven": True, **finding.to_dict()},
        as_json=json,
        text=f"proven ({finding.kind}): {finding.message}\nkey id: {finding.key_id}",
    )
