"""A queue of datagrams that must not leave before their release time.

The landmark server and the link emulator both hold datagrams: the landmark for its declared
processing time, the emulator for the propagation delay of a link. A datagram may leave late
(scheduling only ever adds delay) but never early, because an early datagram would make a
distance bound unsound. The queue sleeps until shortly before the next release time and then
spins on the monotonic clock, so that lateness stays in the tens of microseconds.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

SPIN_NS = 200_000
"""How long before a release time the queue stops sleeping and spins on the clock."""


@dataclass(order=True)
class _Held:
    release_ns: int
    sequence: int
    sock: socket.socket = field(compare=False)
    data: bytes = field(compare=False)
    address: tuple[str, int] | None = field(compare=False)


class DelayQueue:
    """Datagrams waiting for their release time on a monotonic clock in nanoseconds."""

    def __init__(self, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock_ns = clock_ns
        self._held: list[_Held] = []
        self._sequence = itertools.count()
        self.sent = 0
        self.send_errors = 0

    def __len__(self) -> int:
        return len(self._held)

    def hold(
        self,
        release_ns: int,
        sock: socket.socket,
        data: bytes,
        address: tuple[str, int] | None = None,
    ) -> None:
        """Queue ``data`` to be sent on ``sock`` (to ``address`` unless connected) at ``release_ns``."""
        heapq.heappush(self._held, _Held(release_ns, next(self._sequence), sock, data, address))

    def wait_s(self, longest: float) -> float:
        """Return how long a caller may block in ``select`` before it must call :meth:`release`."""
        if not self._held:
            return longest
        remaining_ns = self._held[0].release_ns - self._clock_ns() - SPIN_NS
        return max(0.0, min(longest, remaining_ns / 1e9))

    def release(self) -> None:
        """Send every datagram that is due, spinning for those due within :data:`SPIN_NS`."""
        while self._held:
            head = self._held[0]
            now = self._clock_ns()
            if head.release_ns - now > SPIN_NS:
                return
            while self._clock_ns() < head.release_ns:
                pass
            heapq.heappop(self._held)
            try:
                if head.address is None:
                    head.sock.send(head.data)
                else:
                    head.sock.sendto(head.data, head.address)
            except OSError as exc:
                self.send_errors += 1
                logger.warning("sending a held datagram to %s failed: %s", head.address, exc)
                continue
            self.sent += 1
