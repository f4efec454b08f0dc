"""The hash-chained power log.

Each entry is ``{"seq", "event", "tick", "prev"}`` where ``prev`` is the digest of the canonical
JSON of the previous entry (64 zeros for the first). The head is the digest of the last entry;
the device signs the head and the count in its evidence, so an inspector who receives the entries
can check that none was removed, reordered or altered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flexheg.errors import InputError
from flexheg.wire import Fields, encode, sha256_digest

GENESIS = "sha256:" + "0" * 64
EVENTS = ("power-on", "power-off")


@dataclass(frozen=True)
class PowerEvent:
    seq: int
    event: str
    tick: int
    prev: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event": self.event, "tick": self.tick, "prev": self.prev}

    def digest(self) -> str:
        return sha256_digest(encode(self.to_dict()))


def power_log_head(entries: Sequence[PowerEvent]) -> str:
    return entries[-1].digest() if entries else GENESIS


def append_power_event(entries: Sequence[PowerEvent], event: str, tick: int) -> tuple[PowerEvent, ...]:
    if event not in EVENTS:
        raise InputError(f"power event {event!r} is invalid; expected one of {EVENTS}")
    entry = PowerEvent(len(entries), event, tick, power_log_head(entries))
    return (*entries, entry)


def parse_power_event(value: object, *, where: str) -> PowerEvent:
    fields = Fields(value, where)
    event = PowerEvent(
        seq=fields.int("seq", minimum=0),
        event=fields.str("event"),
        tick=fields.int("tick", minimum=0),
        prev=fields.digest("prev"),
    )
    fields.done()
    if event.event not in EVENTS:
        raise InputError(f"{where}.event: {event.event!r} is not one of {EVENTS}")
    return event


def verify_power_log(entries: Sequence[object], *, head: str, count: int) -> list[PowerEvent]:
    """Check an uploaded power log against the head and count the device signed.

    Raises:
        InputError: an entry is malformed, the chain is broken, ticks go backwards, or the log
            does not end at ``head`` with ``count`` entries.
    """
    events = [parse_power_event(item, where=f"power log entry {index}") for index, item in enumerate(entries)]
    if len(events) != count:
        raise InputError(f"power log has {len(events)} entries; the device attested {count}")
    previous = GENESIS
    last_tick = 0
    for index, event in enumerate(events):
        if event.seq != index:
            raise InputError(f"power log entry {index} has seq {event.seq}")
        if event.prev != previous:
            raise InputError(f"power log entry {index} does not chain to entry {index - 1}")
        if event.tick < last_tick:
            raise InputError(f"power log entry {index} goes back in time ({event.tick} < {last_tick})")
        previous = event.digest()
        last_tick = event.tick
    if previous != head:
        raise InputError(f"power log ends at {previous}, but the device attested head {head}")
    return events
