"""``flexheg ruleset``: build ruleset updates and lifetime extensions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from flexheg.cli._files import read_statement, write_statement
from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.cli.ruleset_check import check
from flexheg.device import Agreement, LifetimeExtension
from flexheg.errors import InputError
from flexheg.rules import RulesetUpdate, load_rules_file
from flexheg.wire import parse_duration, parse_time, sha256_digest

app = typer.Typer(no_args_is_help=True)


@app.command("build")
@handle_errors
def build(
    rules: Annotated[Path, typer.Argument(help="TOML rules file.")],
    agreement: Annotated[Path, typer.Option(help="Agreement file the update is for.")],
    version: Annotated[int, typer.Option(help="Version number; must exceed every installed version.")],
    out: Annotated[Path, typer.Option(help="Update file to write.")],
    lifetime: Annotated[str, typer.Option(help="Lifetime from the issue time, e.g. 90d.")] = "90d",
    issued_at: Annotated[str | None, typer.Option(help="Issue time (RFC 3339); defaults to now.")] = None,
    description: Annotated[str, typer.Option(help="What changed, for approvers.")] = "",
    json: JsonOption = False,
) -> None:
    """Build a ruleset update from a TOML rules file."""
    agreement_data, parsed_agreement = read_statement(agreement, Agreement)
    if version < 1:
        raise InputError(f"--version {version} is invalid; versions start at 1")
    seconds = parse_duration(lifetime)
    if not 0 < seconds <= parsed_agreement.max_lifetime:
        raise InputError(
            f"--lifetime {lifetime} is invalid; devices accept 1 s to the agreement's maximum of "
            f"{parsed_agreement.max_lifetime} s"
        )
    ruleset = load_rules_file(rules)
    if not ruleset.rules:
        raise InputError(f"{rules}: holds no [[rule]]; an update without rules denies every workload")
    update = RulesetUpdate(
        agreement=sha256_digest(agreement_data),
        version=version,
        issued_at=parse_time(issued_at) if issued_at else int(time.time()),
        lifetime=seconds,
        ruleset=ruleset,
        description=description,
    )
    data = write_statement(out, update)
    digest = sha256_digest(data)
    emit(
        {"ok": True, "update": str(out), "digest": digest, "version": version, "not_after": update.not_after},
        as_json=json,
        text=f"wrote {out}: version {version}, {len(update.ruleset.rules)} rules ({digest})",
    )


@app.command("extension")
@handle_errors
def extension(
    update: Annotated[Path, typer.Argument(help="The update file to extend.")],
    serial: Annotated[int, typer.Option(help="Extension serial; must exceed the last accepted one.")],
    add: Annotated[str, typer.Option(help="Time to add to the update's original expiry, e.g. 30d.")],
    out: Annotated[Path, typer.Option(help="Extension file to write.")],
    json: JsonOption = False,
) -> None:
    """Build a lifetime extension bound to one update."""
    data, parsed = read_statement(update, RulesetUpdate)
    if serial < 1:
        raise InputError(f"--serial {serial} is invalid; serials start at 1")
    if parse_duration(add) < 1:
        raise InputError(f"--add {add} is invalid; an extension must move the expiry forward")
    statement = LifetimeExtension(
        agreement=parsed.agreement,
        update=sha256_digest(data),
        version=parsed.version,
        serial=serial,
        not_after=parsed.not_after + parse_duration(add),
    )
    written = write_statement(out, statement)
    emit(
        {
            "ok": True,
            "extension": str(out),
            "digest": sha256_digest(written),
            "not_after": statement.not_after,
        },
        as_json=json,
        text=f"wrote {out}: extends version {parsed.version} to {statement.not_after}",
    )


app.command("check")(check)
