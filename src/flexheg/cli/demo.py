"""``flexheg demo``: the treaty scenario, end to end, on real keys, files and device folders."""

from __future__ import annotations

import json as json_module
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flexheg.cli._output import EXIT_REJECTED, JsonOption, console, error_console, handle_errors, print_json
from flexheg.cli._treaty import Treaty
from flexheg.errors import InputError


@handle_errors
def command(
    folder: Annotated[
        Path | None,
        typer.Option("--dir", help="Empty folder for the scenario's files; default: a new temporary one."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Run the treaty scenario and check every guarantee; exit 1 if any outcome is unexpected."""
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="flexheg-demo-"))
    elif folder.exists() and any(folder.iterdir()):
        raise InputError(f"--dir {folder}: the folder is not empty; pass a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)

    def progress(message: str) -> None:
        error_console.print(f"[dim]demo[/dim] {escape(message)}")

    report = Treaty(folder, progress).run()
    document = report.to_dict()
    (folder / "report.json").write_text(json_module.dumps(document, indent=2) + "\n", encoding="utf-8")

    if json:
        print_json(document)
    else:
        table = Table(title=f"flexheg demo: {document['met']} of {document['total']} guarantees met")
        table.add_column("guarantee")
        table.add_column("expected")
        table.add_column("observed")
        table.add_column("met")
        for check in report.checks:
            table.add_row(
                check.guarantee, check.expected, check.observed, "yes" if check.met else "[red]NO[/red]"
            )
        console.print(table)
        console.print(f"files and report.json in {folder} ({document['seconds']} s)")
    if not report.ok:
        raise typer.Exit(EXIT_REJECTED)
