"""``flexheg emulator``: actions only an emulator offers. A real device never lets its owner do these."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.device import Device
from flexheg.errors import InputError
from flexheg.wire import format_time, parse_duration

app = typer.Typer(no_args_is_help=True)


@app.command("advance-clock")
@handle_errors
def advance_clock(
    folder: Annotated[Path, typer.Argument(help="Device folder.")],
    by: Annotated[str, typer.Option(help="How far to move the device clock forward, e.g. 91d.")],
    json: JsonOption = False,
) -> None:
    """Move the device clock forward."""
    now = Device(folder).emulator_advance_clock(parse_duration(by))
    emit({"ok": True, "time": now}, as_json=json, text=f"device time is now {format_time(now)}")


@app.command("tamper")
@handle_errors
def tamper(
    folder: Annotated[Path, typer.Argument(help="Device folder.")],
    sensor: Annotated[str, typer.Option(help="Name of the sensor that fires.")] = "enclosure",
    json: JsonOption = False,
) -> None:
    """Fire a tamper sensor: the device erases its keys and is disabled for good."""
    Device(folder).emulator_tamper(sensor)
    emit({"ok": True, "disabled": True, "sensor": sensor}, as_json=json, text=f"tamper sensor {sensor} fired")


@app.command("power")
@handle_errors
def power(
    folder: Annotated[Path, typer.Argument(help="Device folder.")],
    event: Annotated[str, typer.Argument(help="off or on.")],
    json: JsonOption = False,
) -> None:
    """Record a power-off or power-on event in the device's power log."""
    if event not in ("on", "off"):
        raise InputError(f"power event {event!r} is invalid; use on or off")
    Device(folder).power(f"power-{event}")
    emit({"ok": True, "event": f"power-{event}"}, as_json=json)
