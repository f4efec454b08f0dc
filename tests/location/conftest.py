"""Fixtures that run landmark servers and link emulators as separate processes."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from flexheg.device.location import GeoPoint, Landmark, LocationPolicy
from flexheg.location.client import Round
from flexheg.wire import Envelope, SigningKey, write_key_pair

STARTUP_TIMEOUT_S = 30.0
PROBE = Path(__file__).with_name("probe.py")


def _realtime_prefix() -> list[str]:
    """Return ``chrt -f 10`` where this machine lets us use FIFO real-time scheduling.

    Each emulated round trip wakes four processes in turn. On a loaded machine each wake-up can
    wait milliseconds for a CPU, which inflates round trips far beyond the propagation delay.
    Real-time scheduling lets the measuring processes run as soon as a datagram arrives. It
    changes only how tight the bounds are: scheduling can add delay but never remove it.
    """
    if shutil.which("chrt") is None:
        return []
    probe = subprocess.run(["chrt", "-f", "10", "true"], capture_output=True, check=False)
    return ["chrt", "-f", "10"] if probe.returncode == 0 else []


REALTIME = _realtime_prefix()


@dataclass
class Service:
    """A ``flexheg landmark`` subprocess and the address it printed when it started."""

    process: subprocess.Popen[str]
    address: tuple[str, int]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def stop(self) -> str:
        """Send SIGTERM, wait for a clean exit, and return the service's log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        assert self.process.stdout is not None
        self.process.stdout.close()
        return self.log()


def start_service(arguments: Sequence[str], log_path: Path, *, prefix: Sequence[str] = ()) -> Service:
    """Start ``python -m flexheg.cli.landmark -v ARGUMENTS --json`` and wait for its address."""
    command = [*prefix, sys.executable, "-m", "flexheg.cli.landmark", "-v", *arguments, "--json"]
    log_file = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log_file, text=True, env=dict(os.environ)
    )
    log_file.close()
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    ready = selector.select(STARTUP_TIMEOUT_S)
    selector.close()
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        process.wait()
        raise RuntimeError(
            f"{' '.join(command)} printed no address within {STARTUP_TIMEOUT_S} s; "
            f"log:\n{log_path.read_text(encoding='utf-8')}"
        )
    host, _, port = json.loads(line)["address"].rpartition(":")
    return Service(process, (host, int(port)), log_path)


@dataclass(frozen=True)
class LandmarkFiles:
    """A landmark's key files and its trusted description."""

    private: Path
    landmark: Landmark


def make_landmark(
    folder: Path, landmark_id: str, *, latitude: float = 46.2, longitude: float = 6.14
) -> LandmarkFiles:
    key = SigningKey.generate()
    private, _ = write_key_pair(key, folder / landmark_id)
    landmark = Landmark(landmark_id, key.public, GeoPoint.from_degrees(latitude, longitude), 5000)
    return LandmarkFiles(private, landmark)


def write_policy(path: Path, *landmarks: Landmark) -> LocationPolicy:
    policy = LocationPolicy(landmarks={landmark.id: landmark for landmark in landmarks})
    path.write_text(json.dumps(policy.to_dict()), encoding="utf-8")
    return policy


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("location")


@pytest.fixture(scope="module")
def geneva(workdir: Path) -> LandmarkFiles:
    return make_landmark(workdir, "geneva-1")


@pytest.fixture(scope="module")
def geneva_server(workdir: Path, geneva: LandmarkFiles) -> Iterator[Service]:
    service = start_service(
        ["serve", "--key", str(geneva.private), "--id", "geneva-1", "--processing-us", "1000"],
        workdir / "geneva-server.log",
    )
    yield service
    log = service.stop()
    assert service.process.returncode == 0, log
    assert "landmark geneva-1 serving on" in log
    assert "landmark geneva-1 stopped" in log


def probe_rounds(
    address: tuple[str, int], landmark: Landmark, rounds: int, folder: Path, *, prefix: Sequence[str] = ()
) -> list[Round]:
    """Measure ``rounds`` round trips from a separate (real-time where possible) process."""
    landmark_path = folder / f"{landmark.id}.entry.json"
    landmark_path.write_text(json.dumps(landmark.to_dict()), encoding="utf-8")
    command = [*prefix, *REALTIME, sys.executable, str(PROBE), f"{address[0]}:{address[1]}",
               str(landmark_path), str(rounds)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    return [
        Round(item["nonce"], Envelope.from_dict(item["response"], what="response"), item["rtt_ns"])
        for item in json.loads(result.stdout)
    ]


def start_link(workdir: Path, upstream: tuple[str, int], distance_km: float, name: str) -> Service:
    return start_service(
        ["link", "--upstream", f"{upstream[0]}:{upstream[1]}", "--distance-km", str(distance_km)],
        workdir / f"link-{name}-{time.monotonic_ns()}.log",
    )
