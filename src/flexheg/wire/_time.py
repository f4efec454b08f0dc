"""Durations and timestamps.

Inside statements and the device, time is an integer number of seconds since the Unix epoch
(UTC), called a tick. At the edges people write durations such as ``90d`` and RFC 3339 times.
"""

from __future__ import annotations

import datetime as dt
import re

from flexheg.errors import InputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> int:
    """Parse ``90d``, ``12h``, ``30m``, ``45s``, ``2w`` or a plain number of seconds."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = _DURATION_RE.fullmatch(text)
    if not match:
        raise InputError(
            f"duration {text!r} is invalid; write a number followed by s, m, h, d or w (e.g. 90d)"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    """Format seconds as the largest whole unit, e.g. ``7776000`` as ``90d``."""
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_time(tick: int) -> str:
    """Format a tick as an RFC 3339 UTC timestamp."""
    return dt.datetime.fromtimestamp(tick, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> int:
    """Parse an RFC 3339 timestamp with an explicit offset into a tick."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"time {text!r} is invalid; write RFC 3339, e.g. 2027-01-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise InputError(f"time {text!r} has no UTC offset; append Z or +00:00")
    return int(moment.timestamp())
