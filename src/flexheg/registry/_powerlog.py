"""Verification of a device's hash-chained power log, and the power-off periods it shows.

A power log is a JSON list of entries ``{"seq", "event", "tick", "prev"}``. Entry 0 has
``prev = "sha256:" + 64 * "0"``; entry i has ``prev = sha256_digest(encode(entry[i-1]))``, the
digest of the canonical JSON of the previous entry. The head is the digest of the last entry (the
zero digest for an empty log). The device signs the head and the entry count in its attestation
evidence, so a log that matches both is the log the device kept.

NOTE: the device part will export ``flexheg.device.verify_power_log`` with the same contract;
this module checks the same format until the registry switches to it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flexheg.errors import Reason, Rejected
from flexheg.wire import check_digest, encode, sha256_digest

ZERO_DIGEST = "sha256:" + 64 * "0"
_ENTRY_FIELDS = frozenset({"seq", "event", "tick", "prev"})


class PowerEventKind(enum.StrEnum):
    POWER_ON = "power-on"
    POWER_OFF = "power-off"


@dataclass(frozen=True)
class PowerEvent:
    seq: int
    event: PowerEventKind
    tick: int


@dataclass(frozen=True)
class PowerOffGap:
    """A period without power: from ``off_tick`` to ``on_tick`` (None while still off)."""

    off_tick: int
    on_tick: int | None

    def duration(self, now: int) -> int:
        return (now if self.on_tick is None else self.on_tick) - self.off_tick


def _malformed(index: int, message: str) -> Rejected:
    return Rejected(Reason.MALFORMED, f"power log entry {index}: {message}")


def _int(entry: dict[str, Any], name: str, index: int) -> int:
    value = entry[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _malformed(index, f"{name} {value!r} is not a non-negative integer")
    return value


def verify_power_log(entries: Sequence[object], *, head: str, count: int) -> list[PowerEvent]:
    """Check a power log against the head digest and entry count that the device signed.

    Steps: (1) the count matches; (2) each entry has exactly the four fields, the right
    sequence number, a known event that alternates with the previous one, and a tick no earlier
    than the previous one; (3) each ``prev`` is the digest of the previous entry; (4) the digest
    of the last entry is the signed head.

    Raises:
        Rejected: ``malformed`` for a wrong shape or order, ``digest-mismatch`` for a broken
            chain, a wrong head or a wrong count.
    """
    check_digest(head, what="power log head")

    # Step 1: the signed count.
    if len(entries) != count:
        raise Rejected(
            Reason.DIGEST_MISMATCH,
            "power log length differs from the count the device signed",
            expected=str(count),
            actual=str(len(entries)),
        )

    events: list[PowerEvent] = []
    previous_digest = ZERO_DIGEST
    previous_event: PowerEventKind | None = None
    previous_tick = 0
    for index, entry in enumerate(entries):
        # Step 2: the entry's shape and order.
        if not isinstance(entry, dict) or set(entry) != _ENTRY_FIELDS:
            raise _malformed(index, "expected exactly the fields seq, event, tick and prev")
        seq = _int(entry, "seq", index)
        tick = _int(entry, "tick", index)
        if seq != index:
            raise _malformed(index, f"seq is {seq}, expected {index}")
        try:
            event = PowerEventKind(entry["event"])
        except ValueError:
            raise _malformed(index, f"event {entry['event']!r} is not power-on or power-off") from None
        if event == previous_event:
            raise _malformed(index, f"two {event.value} events in a row")
        if tick < previous_tick:
            raise _malformed(index, f"tick {tick} is earlier than the previous tick {previous_tick}")

        # Step 3: the hash chain.
        if entry["prev"] != previous_digest:
            raise Rejected(
                Reason.DIGEST_MISMATCH,
                f"power log entry {index}: prev does not match the digest of entry {index - 1}",
                expected=previous_digest,
                actual=str(entry["prev"]),
            )
        previous_digest = sha256_digest(encode(entry))
        previous_event = event
        previous_tick = tick
        events.append(PowerEvent(seq, event, tick))

    # Step 4: the signed head.
    if previous_digest != head:
        raise Rejected(
            Reason.DIGEST_MISMATCH,
            "power log head differs from the head the device signed",
            expected=head,
            actual=previous_digest,
        )
    return events


def power_off_gaps(events: Sequence[PowerEvent], *, threshold: int, now: int) -> list[PowerOffGap]:
    """Return the power-off periods longer than ``threshold`` seconds.

    A log that ends with a power-off counts as off until ``now``.
    """
    gaps = []
    for index, event in enumerate(events):
        if event.event is not PowerEventKind.POWER_OFF:
            continue
        following = events[index + 1] if index + 1 < len(events) else None
        gap = PowerOffGap(event.tick, None if following is None else following.tick)
        if gap.duration(now) > threshold:
            gaps.append(gap)
    return gaps


def build_power_log(events: Sequence[tuple[str, int]]) -> tuple[list[dict[str, Any]], str]:
    """Build a chained power log from (event, tick) pairs. Return the entries and the head.

    The registry uses this in tests and the demo to produce the logs a device would keep.
    """
    entries: list[dict[str, Any]] = []
    previous = ZERO_DIGEST
    for seq, (event, tick) in enumerate(events):
        entry = {"seq": seq, "event": event, "tick": tick, "prev": previous}
        entries.append(entry)
        previous = sha256_digest(encode(entry))
    return entries, previous
