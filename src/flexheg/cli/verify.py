"""``flexheg verify``: check evidence and proofs with public keys only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from flexheg.attest import EvidenceBundle, appraise
from flexheg.cli._files import read_bytes, read_statement
from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.cli.verify_equivocation import equivocation
from flexheg.cli.verify_model import model
from flexheg.device import Agreement
from flexheg.wire import parse_time

app = typer.Typer(no_args_is_help=True)
app.command("equivocation")(equivocation)
app.command("model")(model)


@app.command("evidence")
@handle_errors
def evidence(
    path: Annotated[Path, typer.Argument(help="Evidence file from 'flexheg device attest'.")],
    agreement: Annotated[Path, typer.Option(help="The agreement the device should run under.")],
    nonce: Annotated[str, typer.Option(help="The nonce you gave the device.")],
    max_age: Annotated[int, typer.Option(help="Accept evidence at most this many seconds old.")] = 300,
    device_id: Annotated[
        str | None, typer.Option(help="The device you asked; evidence from any other device is rejected.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Appraise as of this time (RFC 3339) instead of now.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Appraise device evidence against the manufacturer keys and the agreement."""
    bundle = EvidenceBundle.from_json(read_bytes(path, what="evidence"), what=str(path))
    agreement_payload, _ = read_statement(agreement, Agreement)
    result = appraise(
        bundle,
        agreement_payload=agreement_payload,
        nonce=nonce,
        now=parse_time(at) if at else int(time.time()),
        max_age=max_age,
        device_id=device_id,
    )
    emit(
        {"ok": True, **result.to_dict()},
        as_json=json,
        text=(
            f"verified {result.device_id}: mode {result.evidence.mode}, "
            f"version {result.evidence.ruleset_version}"
        ),
    )
