"""``flexheg agreement``: create the agreement written into devices at assembly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flexheg.cli._files import read_statement, write_statement
from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.device import Agreement, AgreementKind, ApproverSetChange, LogConfig, NamedKeys
from flexheg.errors import InputError
from flexheg.policy import Action, Approver, ApproverKey, Policy, check_approver_set
from flexheg.rules import load_rules_file
from flexheg.wire import load_public_key, parse_duration, parse_statement, sha256_digest
from flexheg.wire.checkpoint import NoteVerifier

app = typer.Typer(no_args_is_help=True)


def _parse_approver(text: str) -> Approver:
    """Parse ``ID=KEY.pub.json[,KEY2.pub.json][:VOTES]``."""
    approver_id, sep, rest = text.partition("=")
    if not sep or not approver_id or not rest:
        raise InputError(
            f"--approver {text!r} is invalid; write ID=KEY.pub.json[:VOTES], e.g. bloc-a=a.pub.json:1"
        )
    keys_text, _, votes_text = rest.rpartition(":") if rest.rsplit(":", 1)[-1].isdigit() else (rest, "", "1")
    keys = tuple(ApproverKey(load_public_key(Path(p))) for p in keys_text.split(","))
    return Approver(approver_id, int(votes_text), keys)


def _log_config(log_key: str | None, witnesses: list[str], quorum: int) -> LogConfig | None:
    if log_key is None:
        if witnesses:
            raise InputError("--witness needs --log-key: name the log the witnesses cosign")
        return None
    verifier = NoteVerifier.from_vkey(log_key, what="--log-key")
    for text in witnesses:
        NoteVerifier.from_vkey(text, what="--witness")
    if not witnesses or not 1 <= quorum <= len(witnesses):
        raise InputError(
            f"--witness-quorum {quorum} is invalid for {len(witnesses)} witnesses; give at least one "
            "--witness and a quorum between 1 and their number"
        )
    return LogConfig(verifier.name, log_key, tuple(witnesses), quorum)


@app.command("create")
@handle_errors
def create(
    out: Annotated[Path, typer.Option("--out", help="Agreement file to write.")],
    approver: Annotated[
        list[str], typer.Option("--approver", help="ID=KEY.pub.json[:VOTES]; repeat for each approver.")
    ],
    manufacturer: Annotated[list[Path], typer.Option("--manufacturer", help="Manufacturer public key file.")],
    name: Annotated[str, typer.Option(help="Name of the agreement.")] = "flexheg agreement",
    kind: Annotated[str, typer.Option(help="ruleset or verification.")] = "ruleset",
    baseline: Annotated[
        Path | None,
        typer.Option(help="TOML rules file of the baseline ruleset; without it devices lock down."),
    ] = None,
    install_policy: Annotated[str, typer.Option(help="all, majority or weighted:K.")] = "all",
    extend_policy: Annotated[str, typer.Option(help="all, majority or weighted:K.")] = "majority",
    change_policy: Annotated[
        str, typer.Option(help="Policy for changing approvers (old and new set).")
    ] = "all",
    max_lifetime: Annotated[str, typer.Option(help="Longest update lifetime, e.g. 90d.")] = "90d",
    max_extension: Annotated[str, typer.Option(help="Most time extensions may add to one update.")] = "30d",
    licensing_state: Annotated[
        list[str] | None, typer.Option(help="ID=KEY.pub.json of a state that may issue licenses.")
    ] = None,
    log_key: Annotated[
        str | None, typer.Option(help="Verifier key (name+id+key) of the transparency log devices require.")
    ] = None,
    witness: Annotated[
        list[str] | None, typer.Option(help="Cosignature verifier key of a log witness; repeat for each.")
    ] = None,
    witness_quorum: Annotated[
        int, typer.Option(help="Distinct witnesses that must cosign a checkpoint.")
    ] = 1,
    json: JsonOption = False,
) -> None:
    """Create an agreement file (canonical JSON) from approver and manufacturer keys."""
    approvers = tuple(_parse_approver(text) for text in approver)
    check_approver_set(approvers, where="--approver")
    try:
        agreement_kind = AgreementKind(kind)
    except ValueError:
        raise InputError(f"--kind {kind!r} is invalid; use ruleset or verification") from None
    states = tuple(
        NamedKeys(text.partition("=")[0], (load_public_key(Path(text.partition("=")[2])),))
        for text in licensing_state or []
    )
    agreement = Agreement(
        name=name,
        kind=agreement_kind,
        approvers=approvers,
        policies={
            Action.INSTALL: Policy.parse(install_policy),
            Action.EXTEND: Policy.parse(extend_policy),
            Action.CHANGE_APPROVERS: Policy.parse(change_policy),
        },
        manufacturers=tuple(load_public_key(path) for path in manufacturer),
        baseline=load_rules_file(baseline) if baseline else None,
        max_lifetime=parse_duration(max_lifetime),
        max_extension=parse_duration(max_extension),
        licensing_states=states,
        log=_log_config(log_key, witness or [], witness_quorum),
    )
    # Round-trip through the strict parser so that every check on agreements applies here too.
    data = agreement.encode()
    parse_statement(data, Agreement, what="agreement")
    write_statement(out, agreement)
    digest = sha256_digest(data)
    emit({"ok": True, "agreement": str(out), "digest": digest}, as_json=json, text=f"wrote {out} ({digest})")


@app.command("show")
@handle_errors
def show(path: Annotated[Path, typer.Argument(help="Agreement file.")], json: JsonOption = False) -> None:
    """Print an agreement's approvers, policies and limits."""
    data, agreement = read_statement(path, Agreement)
    document = {"digest": sha256_digest(data), **agreement.to_dict()}
    emit(document, as_json=json)


@app.command("change-approvers")
@handle_errors
def change_approvers(
    agreement: Annotated[Path, typer.Option(help="The agreement whose approver set changes.")],
    epoch: Annotated[
        int, typer.Option(help="The new epoch: one above the device's current epoch (first: 1).")
    ],
    approver: Annotated[
        list[str], typer.Option("--approver", help="ID=KEY.pub.json[:VOTES] of the new set; repeat for each.")
    ],
    out: Annotated[Path, typer.Option(help="Approver-set change file to write.")],
    json: JsonOption = False,
) -> None:
    """Build an approver-set change; the old and the new set must both approve it."""
    data, _ = read_statement(agreement, Agreement)
    if epoch < 1:
        raise InputError(f"--epoch {epoch} is invalid; epochs start at 1")
    approvers = tuple(_parse_approver(text) for text in approver)
    check_approver_set(approvers, where="--approver")
    change = ApproverSetChange(sha256_digest(data), epoch, approvers)
    written = write_statement(out, change)
    emit(
        {"ok": True, "change": str(out), "digest": sha256_digest(written), "epoch": epoch},
        as_json=json,
        text=f"wrote {out}: epoch {epoch}, approvers {', '.join(a.id for a in approvers)}",
    )
