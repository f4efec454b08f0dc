"""Real round trips over loopback through an emulated link of a chosen length.

A landmark server and a link emulator run as separate processes. The link delays every datagram
for the propagation time of its length at the speed of light, so the true distance between the
device and the landmark is the link's length. Loopback, Python and scheduling add a few hundred
microseconds on top. The measuring processes run under real-time scheduling where the machine
allows it, and the minimum over several rounds keeps the overhead small and stable.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flexheg.device.location import (
    SPEED_OF_LIGHT_M_PER_S,
    LocationPolicy,
    LocationProof,
    make_location_proof,
    verify_location_proof,
)
from flexheg.location import measure_rounds, prove_location
from flexheg.wire import SigningKey

from .conftest import LandmarkFiles, Service, probe_rounds, start_link, start_service

ROUNDS = 15
ATTEMPTS = 8
TOLERANCE = 0.25


def round_bounds(address: tuple[str, int], landmark: LandmarkFiles, folder: Path) -> list[int]:
    """Return the distance bound of every verified round, in metres."""
    now = int(time.time())
    rounds = probe_rounds(address, landmark.landmark, ROUNDS, folder)
    assert len(rounds) == ROUNDS
    return [
        make_location_proof(
            item.response, landmark=landmark.landmark, nonce=item.nonce, rtt_ns=item.rtt_ns, now=now
        ).distance_bound_m
        for item in rounds
    ]


@pytest.mark.parametrize("distance_km", [0, 100, 500, 1000, 2500])
def test_bound_sound_and_tight(
    workdir: Path, geneva: LandmarkFiles, geneva_server: Service, distance_km: int
) -> None:
    link = start_link(workdir, geneva_server.address, distance_km, f"{distance_km}km")
    try:
        true_m = distance_km * 1000
        best = None
        for _ in range(ATTEMPTS):
            bounds = round_bounds(link.address, geneva, workdir)
            too_small = [bound for bound in bounds if bound < true_m]
            assert not too_small, f"bounds below the true {true_m} m: {too_small}"
            best = min(bounds) if best is None else min(best, *bounds)
            if distance_km < 500 or best <= true_m * (1 + TOLERANCE):
                break
        assert best is not None
        if distance_km >= 500:
            assert best <= true_m * (1 + TOLERANCE), f"best bound {best} m for {true_m} m"
    finally:
        log = link.stop()
    assert link.process.returncode == 0, log
    assert "link emulator on" in log
    assert "stopped: forwarded" in log


def test_prove_location_signs_fastest_round(
    workdir: Path, geneva: LandmarkFiles, geneva_server: Service
) -> None:
    device = SigningKey.generate()
    link = start_link(workdir, geneva_server.address, 800, "prove")
    try:
        now = int(time.time())
        envelope = prove_location(
            link.address,
            geneva.landmark,
            sign_key=device,
            clock_ns=time.monotonic_ns,
            now=now,
            rounds=ROUNDS,
        )
    finally:
        link.stop()
    policy = LocationPolicy(landmarks={"geneva-1": geneva.landmark})
    proof = verify_location_proof(envelope, device_key=device.public, policy=policy)
    assert proof == envelope.statement(LocationProof, what="proof")
    assert proof.time == now
    assert proof.processing_us == 1000
    assert proof.signal_speed_m_per_s == SPEED_OF_LIGHT_M_PER_S
    assert proof.distance_bound_m >= 800_000


def test_server_holds_declared_processing(workdir: Path, geneva: LandmarkFiles) -> None:
    """No response leaves before the processing time the landmark declares."""
    server = start_service(
        ["serve", "--key", str(geneva.private), "--id", "geneva-1", "--processing-us", "5000"],
        workdir / "slow-server.log",
    )
    try:
        rounds = measure_rounds(
            server.address,
            geneva.landmark,
            clock_ns=time.monotonic_ns,
            now=int(time.time()),
            rounds=10,
        )
    finally:
        server.stop()
    assert all(item.rtt_ns >= 5_000_000 for item in rounds)


def test_fibre_link_bound_still_sound(workdir: Path, geneva: LandmarkFiles, geneva_server: Service) -> None:
    """A link slower than light in vacuum (fibre) only loosens a bound that assumes vacuum."""
    link = start_service(
        [
            "link",
            "--upstream",
            f"{geneva_server.address[0]}:{geneva_server.address[1]}",
            "--distance-km",
            "600",
            "--signal-speed",
            "200000000",
        ],
        workdir / "fibre-link.log",
    )
    try:
        bounds = round_bounds(link.address, geneva, workdir)
    finally:
        link.stop()
    assert min(bounds) >= 600_000 * SPEED_OF_LIGHT_M_PER_S / 200_000_000
