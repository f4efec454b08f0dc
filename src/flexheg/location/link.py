"""A userspace link emulator: a UDP relay that delays every datagram by a propagation time.

The emulator listens on one address and forwards each datagram to an upstream address (a
landmark), and each reply back to the client that sent the request, holding every datagram in
each direction for ``one_way_delay_ns``. It emulates a long link between a device and a landmark
where kernel traffic shaping (netem) is not available. The delay of a distance is
:func:`propagation_delay_ns`.

Each client address gets its own upstream socket, so replies find their way back. At most
:data:`MAX_CLIENTS` clients are tracked; datagrams from further clients are dropped and logged.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from flexheg.device.location import SPEED_OF_LIGHT_M_PER_S
from flexheg.errors import InputError
from flexheg.location._delay import DelayQueue

logger = logging.getLogger(__name__)

MAX_CLIENTS = 256
MAX_DATAGRAM_BYTES = 65_535
_POLL_S = 0.1


def propagation_delay_ns(distance_m: int, signal_speed_m_per_s: int = SPEED_OF_LIGHT_M_PER_S) -> int:
    """Return the one-way time in nanoseconds for a signal to cover ``distance_m``, rounded up."""
    if distance_m < 0 or signal_speed_m_per_s <= 0:
        raise InputError(
            f"distance {distance_m} m and signal speed {signal_speed_m_per_s} m/s must be "
            "non-negative and positive"
        )
    return -(-(distance_m * 1_000_000_000) // signal_speed_m_per_s)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class LinkEmulator:
    """A delaying UDP relay between clients and one upstream address."""

    def __init__(
        self,
        upstream: tuple[str, int],
        one_way_delay_ns: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if one_way_delay_ns < 0:
            raise InputError(f"one-way delay {one_way_delay_ns} ns is negative")
        self.upstream = upstream
        self.one_way_delay_ns = one_way_delay_ns
        self._clock_ns = clock_ns
        self._queue = DelayQueue(clock_ns)
        self._stop = threading.Event()
        self._selector = selectors.SelectSelector()  # select(2) takes microsecond timeouts; epoll only ms
        self._by_client: dict[tuple[str, int], socket.socket] = {}
        self._by_upstream: dict[socket.socket, tuple[str, int]] = {}
        self.forwarded = 0
        self.dropped = 0
        self._listen = socket.socket(_family(host), socket.SOCK_DGRAM)
        try:
            self._listen.bind((host, port))
        except OSError as exc:
            self._listen.close()
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self._listen.setblocking(False)
        self._selector.register(self._listen, selectors.EVENT_READ)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listen.getsockname()[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return; safe to call from a signal handler or thread."""
        self._stop.set()

    def serve_forever(self) -> None:
        """Relay datagrams until :meth:`stop` is called, then close every socket."""
        host, port = self.address
        logger.info(
            "link emulator on %s:%d forwarding to %s:%d with %d ns one-way delay",
            host,
            port,
            self.upstream[0],
            self.upstream[1],
            self.one_way_delay_ns,
        )
        try:
            while not self._stop.is_set():
                for key, _ in self._selector.select(self._queue.wait_s(_POLL_S)):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listen:
                        self._from_clients()
                    else:
                        self._from_upstream(sock)
                self._queue.release()
        finally:
            for sock in [self._listen, *self._by_upstream]:
                self._selector.unregister(sock)
                sock.close()
            self._selector.close()
            logger.info(
                "link emulator on %s:%d stopped: forwarded %d datagrams, dropped %d",
                host,
                port,
                self.forwarded,
                self.dropped,
            )

    def _upstream_for(self, client: tuple[str, int]) -> socket.socket | None:
        sock = self._by_client.get(client)
        if sock is not None:
            return sock
        if len(self._by_client) >= MAX_CLIENTS:
            return None
        sock = socket.socket(_family(self.upstream[0]), socket.SOCK_DGRAM)
        try:
            sock.connect(self.upstream)
        except OSError as exc:
            sock.close()
            logger.warning("link emulator: cannot reach upstream %s: %s", self.upstream, exc)
            return None
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ)
        self._by_client[client] = sock
        self._by_upstream[sock] = client
        return sock

    def _from_clients(self) -> None:
        while True:
            try:
                data, client = self._listen.recvfrom(MAX_DATAGRAM_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                logger.warning("link emulator: receive from clients failed: %s", exc)
                return
            arrived_ns = self._clock_ns()
            upstream = self._upstream_for(client)
            if upstream is None:
                self.dropped += 1
                logger.warning("link emulator: dropped a datagram from %s (no upstream socket)", client)
                continue
            self._queue.hold(arrived_ns + self.one_way_delay_ns, upstream, data)
            self.forwarded += 1

    def _from_upstream(self, sock: socket.socket) -> None:
        client = self._by_upstream[sock]
        while True:
            try:
                data = sock.recv(MAX_DATAGRAM_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                self.dropped += 1
                logger.warning("link emulator: receive from upstream for %s failed: %s", client, exc)
                return
            arrived_ns = self._clock_ns()
            self._queue.hold(arrived_ns + self.one_way_delay_ns, self._listen, data, client)
            self.forwarded += 1
