"""``flexheg verify model``: check that released weights are the weights a training record names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flexheg.cli._files import read_bytes
from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.errors import Reason, Rejected


@handle_errors
def model(
    weights: Annotated[
        Path, typer.Argument(help="Released weights: a .safetensors file or a state dict (.pt).")
    ],
    record: Annotated[Path, typer.Argument(help="Record bundle (record.json) that the device issued.")],
    agreement: Annotated[Path, typer.Option(help="The agreement whose manufacturers certify the device.")],
    json: JsonOption = False,
) -> None:
    """Verify the record's signatures, then compare the canonical digest of WEIGHTS with the record's."""
    from flexheg.device.records import RecordBundle, verify_record  # noqa: PLC0415
    from flexheg.integrations.weights import file_digest  # noqa: PLC0415

    bundle = RecordBundle.from_json(read_bytes(record, what="record"), what=str(record))
    verified = verify_record(bundle, agreement_payload=read_bytes(agreement, what="agreement"))
    digest = file_digest(weights)
    if digest != verified.weights:
        raise Rejected(
            Reason.RECORD_MISMATCH,
            f"{weights} are not the final weights of run {verified.run_id!r}",
            expected=verified.weights,
            actual=digest,
        )
    emit(
        {
            "ok": True,
            "weights": digest,
            "device_id": verified.device_id,
            "run_id": verified.run_id,
            "flop_total": str(verified.flop_total),
            "parameters": verified.parameters,
            "steps": verified.steps,
        },
        as_json=json,
        text=(
            f"verified: {weights.name} are the final weights of run {verified.run_id} on "
            f"{verified.device_id} ({verified.flop_total} FLOP, {verified.steps} steps)"
        ),
    )
