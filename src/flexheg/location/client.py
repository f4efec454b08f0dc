"""Device-side measurement: challenge a landmark, time the round trip and sign a location proof.

:func:`prove_location` is the one call a guarantee processor makes. It sends several challenges,
each with a fresh nonce, times each round trip on the device's monotonic clock, verifies every
response with :func:`~flexheg.device.location.check_landmark_response`, and signs a
:class:`~flexheg.device.location.LocationProof` for the fastest verified round trip. The fastest
round is the one least inflated by scheduling, and any round is sound on its own.

The clock is read immediately before the challenge leaves and immediately after the response
arrives, and verification happens after the second read, so the measured time only ever
includes more than the flight, never less.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

from flexheg.device.location import (
    DEFAULT_MAX_CLOCK_SKEW_S,
    SPEED_OF_LIGHT_M_PER_S,
    Landmark,
    LocationChallenge,
    LocationProof,
    make_location_proof,
)
from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import Envelope, SigningKey, loads_strict

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 4096


def new_nonce() -> str:
    """Return 32 random bytes from the operating system's CSPRNG as 64 hex digits."""
    return secrets.token_hex(32)


@dataclass(frozen=True)
class Round:
    """One verified round trip: the nonce, the response envelope and the time it took."""

    nonce: str
    response: Envelope
    rtt_ns: int


def parse_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[V6]:PORT`` for IPv6) into a socket address."""
    host, separator, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not separator or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InputError(f"address {text!r} is invalid; write HOST:PORT, e.g. 127.0.0.1:4770")
    return host, int(port_text)


def measure_rounds(
    address: tuple[str, int],
    landmark: Landmark,
    *,
    clock_ns: Callable[[], int],
    now: int,
    rounds: int = 5,
    timeout_s: float = 1.0,
    max_clock_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S,
    nonce_source: Callable[[], str] = new_nonce,
) -> list[Round]:
    """Run ``rounds`` challenges against the landmark at ``address`` and return the verified ones.

    A datagram that fails verification (a replayed response, a forged signature, another
    landmark's answer) is logged and ignored while the client keeps waiting for the real
    response. A round with no valid response within ``timeout_s`` is lost.

    Raises:
        Rejected: no round produced a valid response. The reason is that of the last invalid
            datagram, or ``location-unverified`` if every round timed out.
    """
    if rounds < 1:
        raise InputError(f"rounds must be at least 1, got {rounds}")
    if timeout_s <= 0:
        raise InputError(f"timeout must be positive, got {timeout_s} s")
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    verified: list[Round] = []
    last_error: Rejected | None = None
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        for _ in range(rounds):
            nonce = nonce_source()
            challenge = LocationChallenge(landmark.id, nonce).encode()
            outcome = _one_round(
                sock,
                challenge,
                landmark,
                nonce,
                clock_ns=clock_ns,
                now=now,
                timeout_s=timeout_s,
                max_clock_skew_s=max_clock_skew_s,
            )
            if isinstance(outcome, Round):
                verified.append(outcome)
            elif outcome is not None:
                last_error = outcome
    if verified:
        return verified
    if last_error is not None:
        raise last_error
    raise Rejected(
        Reason.LOCATION_UNVERIFIED,
        f"landmark {landmark.id} at {address[0]}:{address[1]} did not answer any of {rounds} "
        f"challenges within {timeout_s} s each",
    )


def _one_round(
    sock: socket.socket,
    challenge: bytes,
    landmark: Landmark,
    nonce: str,
    *,
    clock_ns: Callable[[], int],
    now: int,
    timeout_s: float,
    max_clock_skew_s: int,
) -> Round | Rejected | None:
    """Send one challenge; return the verified round, the last rejection, or None on timeout."""
    deadline_ns = clock_ns() + int(timeout_s * 1e9)
    last_error: Rejected | None = None
    sent_ns = clock_ns()
    try:
        sock.send(challenge)
    except OSError as exc:
        logger.warning("sending a challenge to landmark %s failed: %s", landmark.id, exc)
        return None
    while True:
        remaining_ns = deadline_ns - clock_ns()
        if remaining_ns <= 0:
            logger.info("landmark %s: no valid response within %s s", landmark.id, timeout_s)
            return last_error
        sock.settimeout(remaining_ns / 1e9)
        try:
            data = sock.recv(MAX_RESPONSE_BYTES)
        except TimeoutError:
            continue
        except OSError as exc:
            logger.warning("receiving from landmark %s failed: %s", landmark.id, exc)
            return last_error
        received_ns = clock_ns()
        try:
            envelope = Envelope.from_dict(loads_strict(data, what="response"), what="response")
            make_location_proof(
                envelope,
                landmark=landmark,
                nonce=nonce,
                rtt_ns=received_ns - sent_ns,
                now=now,
                max_clock_skew_s=max_clock_skew_s,
            )
        except InputError as exc:
            logger.warning("ignored a malformed datagram from landmark %s: %s", landmark.id, exc)
            last_error = Rejected(Reason.MALFORMED, str(exc))
            continue
        except Rejected as exc:
            logger.warning("ignored an invalid response from landmark %s: %s", landmark.id, exc)
            last_error = exc
            continue
        return Round(nonce, envelope, received_ns - sent_ns)


def prove_location(
    address: tuple[str, int],
    landmark: Landmark,
    *,
    sign_key: SigningKey,
    clock_ns: Callable[[], int],
    now: int,
    rounds: int = 5,
    timeout_s: float = 1.0,
    signal_speed_m_per_s: int = SPEED_OF_LIGHT_M_PER_S,
    max_clock_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S,
    nonce_source: Callable[[], str] = new_nonce,
) -> Envelope:
    """Measure the distance to ``landmark`` at ``address`` and return a signed location proof.

    Args:
        address: the landmark's UDP address (or that of whatever path leads to it).
        landmark: the trusted landmark, with its key and processing bound.
        sign_key: the device identity key that signs the proof.
        clock_ns: the device's monotonic clock in nanoseconds, e.g. ``time.monotonic_ns``.
        now: the device time as a tick; it dates the proof and checks the landmark's time.
        rounds: challenges to send; the proof records the fastest verified one.
        timeout_s: how long to wait for each response.
        signal_speed_m_per_s: the fastest a signal is assumed to travel.

    Raises:
        Rejected: no valid response arrived (see :func:`measure_rounds`).
    """
    verified = measure_rounds(
        address,
        landmark,
        clock_ns=clock_ns,
        now=now,
        rounds=rounds,
        timeout_s=timeout_s,
        max_clock_skew_s=max_clock_skew_s,
        nonce_source=nonce_source,
    )
    fastest = min(verified, key=lambda item: item.rtt_ns)
    proof: LocationProof = make_location_proof(
        fastest.response,
        landmark=landmark,
        nonce=fastest.nonce,
        rtt_ns=fastest.rtt_ns,
        now=now,
        signal_speed_m_per_s=signal_speed_m_per_s,
        max_clock_skew_s=max_clock_skew_s,
    )
    logger.debug(
        "landmark %s: fastest of %d rounds took %d us, bound %d m",
        landmark.id,
        len(verified),
        proof.rtt_us,
        proof.distance_bound_m,
    )
    return Envelope.sign(proof, sign_key)
