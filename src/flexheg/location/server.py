"""The landmark server: responds to location challenges with signed, timestamped UDP datagrams.

Protocol (one datagram each way):

* request: the canonical JSON of a :class:`~flexheg.device.location.LocationChallenge`;
* response: the canonical JSON of a DSSE envelope, signed by the landmark key, whose payload is a
  :class:`~flexheg.device.location.LandmarkResponse` naming the same nonce.

The server holds each response until ``processing_us`` has passed since the challenge arrived, and
declares that time in the response. A client may subtract it from the round trip: the response
never leaves earlier, so the subtraction never shortens the flight time below the truth.
Challenges that are too large, malformed or addressed to another landmark are dropped and logged.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from flexheg.device.location import (
    MAX_PROCESSING_US,
    LandmarkResponse,
    LocationChallenge,
)
from flexheg.errors import InputError
from flexheg.location._delay import DelayQueue
from flexheg.wire import Envelope, SigningKey, encode, parse_statement

logger = logging.getLogger(__name__)

MAX_CHALLENGE_BYTES = 512
"""Datagrams longer than this are dropped unread; a challenge is about 130 bytes."""

DEFAULT_PROCESSING_US = 1000
"""Default hold time. Signing takes well under this on a current CPU, so the hold dominates."""

_POLL_S = 0.1


class _ErrorLog:
    """Logs caught errors, at most ``burst`` per ``window_s`` seconds, then counts the rest."""

    def __init__(self, name: str, burst: int = 10, window_s: float = 60.0) -> None:
        self._name = name
        self._burst = burst
        self._window_s = window_s
        self._window_start = time.monotonic()
        self._logged = 0
        self._suppressed = 0
        self.total = 0

    def warning(self, message: str, *args: object) -> None:
        self.total += 1
        now = time.monotonic()
        if now - self._window_start >= self._window_s:
            if self._suppressed:
                logger.warning("%s: %d more errors were not logged", self._name, self._suppressed)
            self._window_start, self._logged, self._suppressed = now, 0, 0
        if self._logged < self._burst:
            self._logged += 1
            logger.warning(message, *args)
        else:
            self._suppressed += 1


class LandmarkServer:
    """A landmark on a UDP socket. Create it, then call :meth:`serve_forever` (or run a thread).

    ``tick`` returns the landmark's current time as a tick; it is the only wall-clock read.
    """

    def __init__(
        self,
        key: SigningKey,
        landmark_id: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        processing_us: int = DEFAULT_PROCESSING_US,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        tick: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        if not 0 <= processing_us <= MAX_PROCESSING_US:
            raise InputError(f"processing time {processing_us} us is outside 0..{MAX_PROCESSING_US} us")
        # Building a challenge checks the id's format before the socket opens.
        LocationChallenge(landmark_id, "0" * 64)
        self.key = key
        self.landmark_id = landmark_id
        self.processing_us = processing_us
        self._clock_ns = clock_ns
        self._tick = tick
        self._queue = DelayQueue(clock_ns)
        self._stop = threading.Event()
        self._errors = _ErrorLog(f"landmark {landmark_id}")
        self.responded = 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self._sock.setblocking(False)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def dropped(self) -> int:
        return self._errors.total

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return; safe to call from a signal handler or thread."""
        self._stop.set()

    def close(self) -> None:
        """Close the socket; :meth:`serve_forever` does this when it returns."""
        self._sock.close()

    def serve_forever(self) -> None:
        """Respond to challenges until :meth:`stop` is called, then close the socket."""
        host, port = self.address
        logger.info(
            "landmark %s serving on %s:%d (key %s, processing %d us)",
            self.landmark_id,
            host,
            port,
            self.key.keyid,
            self.processing_us,
        )
        selector = selectors.SelectSelector()  # select(2) takes microsecond timeouts; epoll only ms
        selector.register(self._sock, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                if selector.select(self._queue.wait_s(_POLL_S)):
                    self._receive_all()
                self._queue.release()
        finally:
            selector.close()
            self.close()
            logger.info(
                "landmark %s stopped: responded to %d challenges, dropped %d datagrams",
                self.landmark_id,
                self.responded,
                self.dropped,
            )

    def _receive_all(self) -> None:
        while True:
            try:
                data, address = self._sock.recvfrom(MAX_CHALLENGE_BYTES + 1)
            except BlockingIOError:
                return
            except OSError as exc:
                self._errors.warning("landmark %s: receive failed: %s", self.landmark_id, exc)
                return
            received_ns = self._clock_ns()
            response = self.answer(data, address)
            if response is not None:
                release_ns = received_ns + self.processing_us * 1000
                self._queue.hold(release_ns, self._sock, response, address)
                self.responded += 1
            self._queue.release()

    def answer(self, data: bytes, address: tuple[str, int]) -> bytes | None:
        """Return the signed response datagram for a challenge, or None if it is dropped."""
        if len(data) > MAX_CHALLENGE_BYTES:
            self._errors.warning(
                "landmark %s: dropped a %d-byte datagram from %s (limit %d)",
                self.landmark_id,
                len(data),
                address,
                MAX_CHALLENGE_BYTES,
            )
            return None
        try:
            challenge = parse_statement(data, LocationChallenge, what="challenge")
        except InputError as exc:
            self._errors.warning(
                "landmark %s: dropped a malformed challenge from %s: %s",
                self.landmark_id,
                address,
                exc,
            )
            return None
        if challenge.landmark != self.landmark_id:
            self._errors.warning(
                "landmark %s: dropped a challenge from %s addressed to landmark %s",
                self.landmark_id,
                address,
                challenge.landmark,
            )
            return None
        response = LandmarkResponse(
            landmark=self.landmark_id,
            nonce=challenge.nonce,
            time=self._tick(),
            processing_us=self.processing_us,
        )
        return encode(Envelope.sign(response, self.key).to_dict())
