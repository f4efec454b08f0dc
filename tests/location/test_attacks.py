"""Attacks on location proofs: relays, replays, forged landmark keys and re-targeted challenges.

The honest landmark runs as a separate process. The attacker's relays are small UDP forwarders
in threads of the test process, standing for the device owner's control of the network.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flexheg.device.location import (
    LandmarkResponse,
    LocationChallenge,
    LocationPolicy,
    LocationProof,
    make_location_proof,
    verify_location_proof,
)
from flexheg.errors import Reason, Rejected
from flexheg.location import measure_rounds, prove_location
from flexheg.location.client import Round
from flexheg.wire import Envelope, SigningKey, encode, parse_statement

from .conftest import LandmarkFiles, Service, make_landmark, probe_rounds, start_link, start_service

ROUNDS = 15


class Forwarder:
    """A UDP relay in a thread, controlled by the attacker.

    ``on_request`` maps each request to datagrams sent back to the client and an optional
    datagram sent upstream. Replies from upstream go back to the last client unchanged.
    """

    def __init__(
        self,
        upstream: tuple[str, int] | None,
        on_request: Callable[[bytes], tuple[list[bytes], bytes | None]],
    ) -> None:
        self._listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._listen.bind(("127.0.0.1", 0))
        self._listen.settimeout(0.05)
        self._upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._upstream.settimeout(0.05)
        self._upstream_address = upstream
        self._on_request = on_request
        self._client: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listen.getsockname()
        return host, port

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, self._client = self._listen.recvfrom(4096)
            except TimeoutError:
                pass
            else:
                to_client, to_upstream = self._on_request(data)
                for datagram in to_client:
                    self._listen.sendto(datagram, self._client)
                if to_upstream is not None and self._upstream_address is not None:
                    self._upstream.sendto(to_upstream, self._upstream_address)
            try:
                reply = self._upstream.recv(4096)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if self._client is not None:
                self._listen.sendto(reply, self._client)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listen.close()
        self._upstream.close()


@pytest.fixture
def device() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def berlin(workdir: Path) -> LandmarkFiles:
    return make_landmark(workdir, "berlin-1", latitude=52.52, longitude=13.40)


@pytest.fixture(scope="module")
def berlin_server(workdir: Path, berlin: LandmarkFiles) -> Iterator[Service]:
    service = start_service(
        ["serve", "--key", str(berlin.private), "--id", "berlin-1"], workdir / "berlin-server.log"
    )
    yield service
    service.stop()


def _prove(
    address: tuple[str, int], landmark: LandmarkFiles, device: SigningKey, **kwargs: object
) -> LocationProof:
    envelope = prove_location(
        address,
        landmark.landmark,
        sign_key=device,
        clock_ns=time.monotonic_ns,
        now=int(time.time()),
        **kwargs,  # type: ignore[arg-type]
    )
    return envelope.statement(LocationProof, what="proof")


def test_relay_never_tightens_bound(workdir: Path, geneva: LandmarkFiles, geneva_server: Service) -> None:
    """Forwarding through a second host adds that host's path: the bound only grows."""
    direct_link = start_link(workdir, geneva_server.address, 600, "direct")
    relay_host = start_link(workdir, direct_link.address, 600, "relay-host")
    try:
        direct = probe_rounds(direct_link.address, geneva.landmark, ROUNDS, workdir)
        relayed = probe_rounds(relay_host.address, geneva.landmark, ROUNDS, workdir)
    finally:
        relay_host.stop()
        direct_link.stop()
    now = int(time.time())
    direct_bounds = [_bound(item, geneva, now) for item in direct]
    relayed_bounds = [_bound(item, geneva, now) for item in relayed]
    assert min(direct_bounds) >= 600_000
    assert min(relayed_bounds) >= 1_200_000
    assert min(relayed_bounds) >= min(direct_bounds)


def _bound(item: Round, landmark: LandmarkFiles, now: int) -> int:
    proof = make_location_proof(
        item.response, landmark=landmark.landmark, nonce=item.nonce, rtt_ns=item.rtt_ns, now=now
    )
    return proof.distance_bound_m


def test_replayed_response_rejected(
    geneva: LandmarkFiles, geneva_server: Service, device: SigningKey
) -> None:
    """A relay that returns a recorded response for every challenge is rejected (nonce binding)."""
    recorded = measure_rounds(
        geneva_server.address,
        geneva.landmark,
        clock_ns=time.monotonic_ns,
        now=int(time.time()),
        rounds=1,
    )[0]
    replay = encode(recorded.response.to_dict())
    forwarder = Forwarder(None, lambda _request: ([replay], None))
    try:
        with pytest.raises(Rejected) as caught:
            _prove(forwarder.address, geneva, device, rounds=2, timeout_s=0.3)
    finally:
        forwarder.close()
    assert caught.value.reason is Reason.STALE_NONCE


def test_replay_racing_real_response_ignored(
    geneva: LandmarkFiles, geneva_server: Service, device: SigningKey
) -> None:
    """A replay sent ahead of the real response is ignored, and the proof binds the device's nonce."""
    recorded = measure_rounds(
        geneva_server.address,
        geneva.landmark,
        clock_ns=time.monotonic_ns,
        now=int(time.time()),
        rounds=1,
    )[0]
    replay = encode(recorded.response.to_dict())
    forwarder = Forwarder(geneva_server.address, lambda request: ([replay], request))
    try:
        proof = _prove(forwarder.address, geneva, device, rounds=3)
    finally:
        forwarder.close()
    assert proof.nonce != recorded.nonce
    response = proof.response.statement(LandmarkResponse, what="response")
    assert response.nonce == proof.nonce
    policy = LocationPolicy(landmarks={"geneva-1": geneva.landmark})
    verified = verify_location_proof(Envelope.sign(proof, device), device_key=device.public, policy=policy)
    assert verified == proof


def test_forged_landmark_key_rejected(workdir: Path, geneva: LandmarkFiles, device: SigningKey) -> None:
    """A server with its own key that claims to be geneva-1 is rejected."""
    impostor = make_landmark(workdir, "impostor")
    server = start_service(
        ["serve", "--key", str(impostor.private), "--id", "geneva-1"], workdir / "impostor.log"
    )
    try:
        with pytest.raises(Rejected) as caught:
            _prove(server.address, geneva, device, rounds=2, timeout_s=0.3)
    finally:
        server.stop()
    assert caught.value.reason is Reason.UNKNOWN_SIGNER


def test_challenge_sent_to_other_landmark_dropped(
    geneva: LandmarkFiles, berlin_server: Service, device: SigningKey
) -> None:
    """A challenge for geneva-1 routed to the Berlin landmark gets no response."""
    with pytest.raises(Rejected) as caught:
        _prove(berlin_server.address, geneva, device, rounds=2, timeout_s=0.3)
    assert caught.value.reason is Reason.LOCATION_UNVERIFIED
    assert "addressed to landmark geneva-1" in berlin_server.log()


def test_retargeted_challenge_rejected(
    geneva: LandmarkFiles, berlin_server: Service, device: SigningKey
) -> None:
    """A relay that rewrites a geneva-1 challenge for a nearer landmark gets a response that
    names and is signed by that landmark, which the device rejects."""

    def retarget(request: bytes) -> tuple[list[bytes], bytes | None]:
        challenge = parse_statement(request, LocationChallenge, what="challenge")
        return [], LocationChallenge("berlin-1", challenge.nonce).encode()

    forwarder = Forwarder(berlin_server.address, retarget)
    try:
        with pytest.raises(Rejected) as caught:
            _prove(forwarder.address, geneva, device, rounds=2, timeout_s=0.3)
    finally:
        forwarder.close()
    assert caught.value.reason is Reason.UNKNOWN_SIGNER
