"""Landmark and device on separate network namespaces joined by a veth pair.

Each test creates two namespaces (a landmark host and a device host), joins them with a veth
pair on a /30 from 198.18.0.0/15 (the range set aside for network benchmarks), and removes them
afterwards. The link emulator runs on the device host, in front of the veth. The tests skip
where namespaces cannot be created (not root, no ``ip`` tool, or no kernel support).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flexheg.device.location import LocationProof, verify_location_proof
from flexheg.wire import Envelope, SigningKey, write_key_pair

from .conftest import REALTIME, LandmarkFiles, start_service, write_policy

DISTANCE_KM = 700
ATTEMPTS = 6


@dataclass(frozen=True)
class Hosts:
    landmark_ns: str
    device_ns: str
    landmark_ip: str


def _ip(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False, timeout=30)


def _checked(*arguments: str) -> None:
    result = _ip(*arguments)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(arguments)} failed: {result.stderr.strip()}")


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if shutil.which("ip") is None:
        pytest.skip("the ip tool (iproute2) is not installed")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = f"{os.getpid() % 100_000}"
    landmark_ns, device_ns = f"fhl{tag}", f"fhd{tag}"
    subnet = f"198.18.{os.getpid() % 250}"
    created = _ip("netns", "add", landmark_ns)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {created.stderr.strip()}")
    try:
        _checked("netns", "add", device_ns)
        _checked("link", "add", f"fhvl{tag}", "type", "veth", "peer", "name", f"fhvd{tag}")
        _checked("link", "set", f"fhvl{tag}", "netns", landmark_ns)
        _checked("link", "set", f"fhvd{tag}", "netns", device_ns)
        _checked("-n", landmark_ns, "addr", "add", f"{subnet}.1/30", "dev", f"fhvl{tag}")
        _checked("-n", device_ns, "addr", "add", f"{subnet}.2/30", "dev", f"fhvd{tag}")
        for namespace, device in ((landmark_ns, f"fhvl{tag}"), (device_ns, f"fhvd{tag}")):
            _checked("-n", namespace, "link", "set", device, "up")
            _checked("-n", namespace, "link", "set", "lo", "up")
        yield Hosts(landmark_ns, device_ns, f"{subnet}.1")
    finally:
        _ip("netns", "del", device_ns)
        _ip("netns", "del", landmark_ns)


def _prove_in(
    namespace: str, policy: Path, address: tuple[str, int], device_key: Path, out: Path
) -> Envelope:
    command = [
        "ip", "netns", "exec", namespace, *REALTIME, sys.executable, "-m", "flexheg.cli.landmark",
        "prove", "--policy", str(policy), "--landmark", "geneva-1",
        "--address", f"{address[0]}:{address[1]}", "--device-key", str(device_key),
        "--rounds", "15", "--out", str(out), "--json",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["ok"] is True
    return Envelope.from_json(out.read_bytes(), what=str(out))


def test_veth_hosts_bound_sound_and_tight(
    hosts: Hosts, workdir: Path, geneva: LandmarkFiles, tmp_path: Path
) -> None:
    device = SigningKey.generate()
    device_key, _ = write_key_pair(device, tmp_path / "device")
    policy_path = tmp_path / "policy.json"
    policy = write_policy(policy_path, geneva.landmark)

    prefix_l = ["ip", "netns", "exec", hosts.landmark_ns]
    prefix_d = ["ip", "netns", "exec", hosts.device_ns]
    server = start_service(
        ["serve", "--key", str(geneva.private), "--id", "geneva-1", "--listen", f"{hosts.landmark_ip}:0"],
        tmp_path / "server.log",
        prefix=prefix_l,
    )
    link = start_service(
        [
            "link", "--upstream", f"{server.address[0]}:{server.address[1]}",
            "--distance-km", str(DISTANCE_KM), "--listen", "127.0.0.1:0",
        ],
        tmp_path / "link.log",
        prefix=prefix_d,
    )  # fmt: skip

    try:
        bounds = []
        for attempt in range(ATTEMPTS):
            envelope = _prove_in(
                hosts.device_ns, policy_path, link.address, device_key, tmp_path / f"proof{attempt}.json"
            )
            proof = verify_location_proof(envelope, device_key=device.public, policy=policy)
            assert proof == envelope.statement(LocationProof, what="proof")
            assert abs(proof.time - int(time.time())) < 60
            bounds.append(proof.distance_bound_m)
            if proof.distance_bound_m <= DISTANCE_KM * 1000 * 1.25:
                break
    finally:
        link_log = link.stop()
        server_log = server.stop()

    assert min(bounds) >= DISTANCE_KM * 1000
    assert min(bounds) <= DISTANCE_KM * 1000 * 1.25, bounds
    assert "landmark geneva-1 serving on " + hosts.landmark_ip in server_log
    assert "stopped: forwarded" in link_log
