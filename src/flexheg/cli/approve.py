"""``flexheg approve``: approve a ruleset update or extension as one approver with one key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from flexheg.authority import sign_approval
from flexheg.cli._files import read_bytes, write_envelope
from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.device import LifetimeExtension
from flexheg.errors import InputError
from flexheg.policy import Action
from flexheg.rules import RulesetUpdate
from flexheg.wire import load_signing_key, parse_any_statement, sha256_digest


@handle_errors
def command(
    subject: Annotated[Path, typer.Argument(help="Update or extension file to approve.")],
    approver: Annotated[str, typer.Option(help="Your approver id in the agreement.")],
    key: Annotated[Path, typer.Option(help="Your private key file (.pem).")],
    serial: Annotated[int, typer.Option(help="Your next approval serial; never reuse one.")],
    out: Annotated[Path, typer.Option(help="Approval file to write.")],
    override: Annotated[
        list[str] | None, typer.Option(help="Name a succession check you deliberately override.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Sign an approval of SUBJECT; the action follows from the subject's type."""
    data = read_bytes(subject, what="subject")
    statement = parse_any_statement(data, what=str(subject))
    if isinstance(statement, RulesetUpdate):
        action, agreement = Action.INSTALL, statement.agreement
    elif isinstance(statement, LifetimeExtension):
        action, agreement = Action.EXTEND, statement.agreement
    else:
        raise InputError(
            f"{subject}: a {statement.TYPE} statement cannot be approved; pass an update or extension"
        )
    if serial < 0:
        raise InputError(f"--serial {serial} is invalid; serials are non-negative")
    signing_key = load_signing_key(key)
    envelope = sign_approval(
        signing_key,
        approver=approver,
        agreement=agreement,
        action=action,
        subject=sha256_digest(data),
        serial=serial,
        now=int(time.time()),
        overrides=override or (),
    )
    write_envelope(out, envelope)
    emit(
        {
            "ok": True,
            "approval": str(out),
            "action": action.value,
            "subject": sha256_digest(data),
            "serial": serial,
        },
        as_json=json,
        text=f"{approver} approved {action.value} of {subject} (serial {serial}) -> {out}",
    )
