"""The ``flexheg`` command.

Each command group lives in its own module and exposes a ``typer.Typer`` named ``app`` (or, for
a single command, a function named ``command``); the groups are listed in ``_GROUPS``. Modules
import heavy dependencies (NumPy, SQLAlchemy, torch) inside their command functions, so that
``flexheg --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from flexheg.cli._output import configure_logging

app = typer.Typer(
    name="flexheg",
    help="Flexible hardware-enabled guarantees for AI chips: devices, approvals, logs and analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (command name, module, help). Modules whose app holds a single command are added as groups too.
_GROUPS: list[tuple[str, str, str]] = [
    ("key", "flexheg.cli.keys", "Generate signing keys."),
    ("agreement", "flexheg.cli.agreement", "Create and inspect agreements."),
    ("ruleset", "flexheg.cli.ruleset", "Build ruleset updates and lifetime extensions."),
    ("approve", "flexheg.cli.approve", "Approve a subject as one approver."),
    ("device", "flexheg.cli.device", "Provision and operate an emulated guarantee processor."),
    ("emulator", "flexheg.cli.emulator", "Emulator-only actions that no real device allows."),
    ("verify", "flexheg.cli.verify", "Verify evidence and proofs with public keys only."),
    ("demo", "flexheg.cli.demo", "Run the treaty scenario end to end."),
    ("analyze", "flexheg.cli.analyze", "Stability, detection odds and fleet simulation."),
    ("chips", "flexheg.cli.chips", "Classify chips under export-control thresholds."),
    ("landmark", "flexheg.cli.landmark", "Run landmarks and link emulators; prove and judge locations."),
    ("log", "flexheg.cli.log", "Run a transparency log and its witnesses."),
    ("registry", "flexheg.cli.registry", "Registry of chips, data centers, fabs and equipment."),
    ("serve", "flexheg.cli.serve", "Run the HTTP server: registry API and transparency log."),
]


def _register() -> None:
    for name, module_name, help_text in _GROUPS:
        module = importlib.import_module(module_name)
        if hasattr(module, "command"):
            app.command(name, help=help_text)(module.command)
        else:
            sub_app: typer.Typer = module.app
            app.add_typer(sub_app, name=name, help=help_text)


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log more (repeat for debug).")
    ] = 0,
) -> None:
    configure_logging(verbose)


def main() -> None:
    _register()
    app()
