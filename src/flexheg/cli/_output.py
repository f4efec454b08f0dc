"""Output and exit codes shared by every ``flexheg`` command.

Exit codes: 0 success, 1 rejected or denied (the reason code is in the output), 2 usage or input
error. With ``--json`` a command prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from flexheg.errors import InputError, Rejected

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_INPUT = 2

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]

console = Console()
error_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def print_json(document: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def emit(document: Mapping[str, Any], *, as_json: bool, text: str | Table | None = None) -> None:
    """Print a command's result: the JSON document, or ``text`` (or the document) for people."""
    if as_json:
        print_json(document)
    elif text is not None:
        console.print(text)
    else:
        for key, value in document.items():
            console.print(f"[bold]{key}[/bold]: {value}")


def fail_rejected(error: Rejected, *, as_json: bool) -> NoReturn:
    if as_json:
        print_json({"ok": False, **error.to_dict()})
    else:
        error_console.print(f"[bold red]rejected[/bold red] ({error.reason.value}): {error.message}")
        if error.expected or error.actual:
            error_console.print(f"  expected: {error.expected}\n  actual:   {error.actual}")
    raise typer.Exit(EXIT_REJECTED)


def fail_input(error: InputError, *, as_json: bool) -> NoReturn:
    if as_json:
        print_json({"ok": False, "error": "input", "message": str(error)})
    else:
        error_console.print(f"[bold red]error[/bold red]: {error}")
    raise typer.Exit(EXIT_INPUT)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn InputError into exit 2 and Rejected into exit 1, honouring a ``json`` argument."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("json", False))
        try:
            return func(*args, **kwargs)
        except Rejected as exc:
            fail_rejected(exc, as_json=as_json)
        except InputError as exc:
            fail_input(exc, as_json=as_json)
        except UnicodeDecodeError as exc:
            fail_input(
                InputError(f"input is not valid UTF-8 ({exc.reason} at byte {exc.start})"), as_json=as_json
            )
        except OSError as exc:
            where = exc.filename or "file"
            fail_input(
                InputError(f"{where}: {exc.strerror or exc}; check the path and its permissions"),
                as_json=as_json,
            )

    return wrapper


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever ``sys.stderr`` is at the time of each record, not at configuration."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        del value


def configure_logging(verbosity: int) -> None:
    """Send flexheg's log records to stderr; only the CLI and the server call this."""
    level = logging.WARNING - 10 * verbosity
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger("flexheg")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(max(level, logging.DEBUG))
