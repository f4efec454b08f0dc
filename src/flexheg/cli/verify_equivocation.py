"""``flexheg verify equivocation FILE``: check a proof of double signing or of a log fork."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flexheg.cli._files import read_bytes
from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.translog.equivocation import verify_equivocation


@handle_errors
def equivocation(
    file: Annotated[Path, typer.Argument(help="Proof file (JSON) from a log monitor or witness.")],
    json: JsonOption = False,
) -> None:
    """Check an equivocation proof with the public keys it contains.

    Exit 0 when the file proves misbehaviour (an approver signed two approvals under one serial,
    or extended a version older than one it approved, or a log signed two inconsistent
    checkpoints); 1 when it does not; 2 when the file cannot be read. Compare the reported key id
    with the agreement's keys.
    """
    finding = verify_equivocation(read_bytes(file, what="equivocation proof"))
    emit(
        {"ok": True, "proven": True, **finding.to_dict()},
        as_json=json,
        text=f"proven ({finding.kind}): {finding.message}\nkey id: {finding.key_id}",
    )
