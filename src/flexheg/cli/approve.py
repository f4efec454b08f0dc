"""``flexheg approve``: approve a ruleset update or extension as one approver with one key.

Serials come from the approver's ledger, which records every approval before it is signed, so an
approver using this command can never sign two subjects under one serial, nor extend a version
older than one it has approved. For an update, ``--current`` names the update it succeeds: the
new ruleset is checked against every succession rule of the current one (ratchet and baseline
rights by the SMT prover) and the approval is refused unless each violated rule is named with
``--override``, which the approval then records.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from flexheg.authority.ledger import ApproverSigner
from flexheg.cli._files import read_bytes, read_statement, write_envelope
from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.device import ApproverSetChange, LifetimeExtension
from flexheg.errors import InputError, Reason, Rejected
from flexheg.policy import Action
from flexheg.rules import RulesetUpdate
from flexheg.wire import load_signing_key, parse_any_statement, sha256_digest


def _check_successor(current: Path, update: RulesetUpdate, overrides: list[str]) -> list[str]:
    """Return the violated succession rules, or raise unless each is overridden by name."""
    from flexheg.rules.prover import check_succession  # noqa: PLC0415 - loads z3 only when needed

    _, previous = read_statement(current, RulesetUpdate)
    report = check_succession(previous.ruleset, update.ruleset, new_lifetime=update.lifetime)
    violated = [check.kind.value for check in report.violations]
    missing = sorted(set(violated) - set(overrides))
    if missing:
        first = next(check for check in report.violations if check.kind.value in missing)
        example = f"; counterexample: {first.counterexample.to_dict()}" if first.counterexample else ""
        raise Rejected(
            Reason.SUCCESSION_RULE_VIOLATED,
            f"the update violates succession rule(s) {', '.join(missing)} of {current}: "
            f"{first.detail}{example}. Approve anyway only with --override " + " --override ".join(missing),
            expected="every succession rule proved",
            actual=", ".join(f"{c.kind.value} {c.verdict.value}" for c in report.violations),
        )
    return violated


@handle_errors
def command(
    subject: Annotated[Path, typer.Argument(help="Update or extension file to approve.")],
    approver: Annotated[str, typer.Option(help="Your approver id in the agreement.")],
    key: Annotated[Path, typer.Option(help="Your private key file (.pem).")],
    out: Annotated[Path, typer.Option(help="Approval file to write.")],
    ledger: Annotated[
        Path | None, typer.Option(help="Your approval ledger (SQLite); default: KEY with suffix .ledger.")
    ] = None,
    current: Annotated[
        Path | None, typer.Option(help="The update this one succeeds; its succession rules are checked.")
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option(help="Name a violated succession rule kind you deliberately override; recorded."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Sign an approval of SUBJECT; the action follows from the subject's type."""
    data = read_bytes(subject, what="subject")
    statement = parse_any_statement(data, what=str(subject))
    overrides = sorted(set(override or []))
    if isinstance(statement, RulesetUpdate):
        action, agreement, version = Action.INSTALL, statement.agreement, statement.version
        if current is not None:
            violated = _check_successor(current, statement, overrides)
            unused = sorted(set(overrides) - set(violated))
            if unused:
                raise InputError(f"--override {', '.join(unused)}: no such succession rule is violated")
        elif overrides:
            raise InputError(
                "--override needs --current: name the update whose succession rules you override"
            )
    elif isinstance(statement, LifetimeExtension):
        action, agreement, version = Action.EXTEND, statement.agreement, statement.version
        if overrides:
            raise InputError("--override applies to updates only")
    elif isinstance(statement, ApproverSetChange):
        action, agreement, version = Action.CHANGE_APPROVERS, statement.agreement, None
        if overrides:
            raise InputError("--override applies to updates only")
    else:
        raise InputError(
            f"{subject}: a {statement.TYPE} statement cannot be approved; pass an update or extension"
        )

    signing_key = load_signing_key(key)
    ledger_path = ledger or key.with_suffix(".ledger")
    with ApproverSigner.open(ledger_path, signing_key, approver) as signer:
        envelope = signer.approve(
            agreement=agreement,
            action=action,
            subject=sha256_digest(data),
            version=version,
            now=int(time.time()),
            overrides=overrides,
        )
    write_envelope(out, envelope)
    serial = parse_any_statement(envelope.payload, what="approval").to_dict()["serial"]
    emit(
        {
            "ok": True,
            "approval": str(out),
            "action": action.value,
            "subject": sha256_digest(data),
            "serial": serial,
            "overrides": overrides,
        },
        as_json=json,
        text=f"{approver} approved {action.value} of {subject} (serial {serial}) -> {out}",
    )
