"""Power-off periods in a device's verified power log.

The log format and its verification belong to the device (:func:`flexheg.device.verify_power_log`):
each entry is ``{"seq", "event", "tick", "prev"}``, chained by the digest of the previous entry,
and the device signs the head and the count in its evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flexheg.device import PowerEvent


@dataclass(frozen=True)
class PowerOffGap:
    """A period without power: from ``off_tick`` to ``on_tick`` (None while still off)."""

    off_tick: int
    on_tick: int | None

    def duration(self, now: int) -> int:
        return (now if self.on_tick is None else self.on_tick) - self.off_tick


def power_off_gaps(events: Sequence[PowerEvent], *, threshold: int, now: int) -> list[PowerOffGap]:
    """Return the power-off periods longer than ``threshold`` seconds.

    A period runs from a power-off event to the next event. A log that ends with a power-off
    counts as off until ``now``.
    """
    gaps = []
    for index, event in enumerate(events):
        if event.event != "power-off":
            continue
        following = events[index + 1] if index + 1 < len(events) else None
        gap = PowerOffGap(event.tick, None if following is None else following.tick)
        if gap.duration(now) > threshold:
            gaps.append(gap)
    return gaps
