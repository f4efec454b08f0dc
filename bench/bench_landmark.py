"""Benchmark: location proofs per second per landmark on loopback, against raw signing.

Runs in one process:

1. baseline: raw Ed25519 signatures per second over the bytes a landmark signs for one response
   (securesystemslib's signer, which the landmark uses, and pyca/cryptography directly);
2. landmark capacity: a landmark server in a subprocess, driven by one client that keeps
   ``--window`` challenges in flight and checks the nonce of every response;
3. sequential proofs: full ``prove_location`` calls with one round each (challenge, verify the
   landmark's signature, build and sign the proof), one after another, as one device does;
4. accuracy: the best bound of 15 rounds through link emulators of several lengths, against
   the true (emulated) distance, and the overhead that loopback and scheduling add.

Prints each figure and its ratio to the raw signing rate.

Usage: ``python bench/bench_landmark.py [--seconds 3] [--window 32]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flexheg.device.location import (
    SPEED_OF_LIGHT_M_PER_S,
    GeoPoint,
    Landmark,
    LandmarkResponse,
    LocationChallenge,
    LocationProof,
)
from flexheg.location import new_nonce, prove_location
from flexheg.wire import PAYLOAD_TYPE, SigningKey, loads_strict, pae, write_key_pair

ACCURACY_DISTANCES_KM = (0, 100, 500, 1000, 2500)


def rate(function: object, seconds: float) -> float:
    """Call ``function`` repeatedly for about ``seconds`` and return calls per second."""
    assert callable(function)
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            function()
        count += 50
    return count / elapsed


def start_landmark(key_path: Path) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    command = [
        sys.executable, "-m", "flexheg.cli.landmark", "serve", "--key", str(key_path),
        "--id", "bench-1", "--json",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    host, _, port = json.loads(process.stdout.readline())["address"].rpartition(":")
    return process, (host, int(port))


def start_link(upstream: tuple[str, int], distance_km: int) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    command = [
        sys.executable, "-m", "flexheg.cli.landmark", "link", "--upstream",
        f"{upstream[0]}:{upstream[1]}", "--distance-km", str(distance_km), "--json",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    host, _, port = json.loads(process.stdout.readline())["address"].rpartition(":")
    return process, (host, int(port))


def accuracy(address: tuple[str, int], landmark: Landmark, device: SigningKey) -> list[str]:
    """Return one line per emulated distance: best bound of 15 rounds, ratio and overhead."""
    lines = []
    for distance_km in ACCURACY_DISTANCES_KM:
        process, link_address = start_link(address, distance_km)
        try:
            envelope = prove_location(
                link_address,
                landmark,
                sign_key=device,
                clock_ns=time.monotonic_ns,
                now=int(time.time()),
                rounds=15,
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
        proof = envelope.statement(LocationProof, what="proof")
        true_m = distance_km * 1000
        flight_us = 2 * true_m * 1_000_000 / SPEED_OF_LIGHT_M_PER_S
        overhead_us = proof.rtt_us - proof.processing_us - flight_us
        ratio = f"{proof.distance_bound_m / true_m:.3f}" if true_m else "  -  "
        lines.append(
            f"  {distance_km:5d} km: bound {proof.distance_bound_m / 1000:8.1f} km, "
            f"bound/true {ratio}, overhead {overhead_us:6.0f} us"
        )
    return lines


def pipelined_rate(address: tuple[str, int], window: int, seconds: float) -> float:
    """Keep ``window`` challenges in flight; return matched responses per second."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address)
    sock.settimeout(1.0)
    outstanding: set[str] = set()

    def send_one() -> None:
        nonce = new_nonce()
        outstanding.add(nonce)
        sock.send(LocationChallenge("bench-1", nonce).encode())

    for _ in range(window):
        send_one()
    answered = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            outstanding.clear()
            for _ in range(window):
                send_one()
            continue
        envelope = loads_strict(data, what="response")
        payload = json.loads(base64.b64decode(envelope["payload"]))
        if payload["nonce"] in outstanding:
            outstanding.discard(payload["nonce"])
            answered += 1
            send_one()
    sock.close()
    return answered / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="Duration of each measurement.")
    parser.add_argument("--window", type=int, default=32, help="Challenges kept in flight.")
    options = parser.parse_args()

    key = SigningKey.generate()
    message = pae(PAYLOAD_TYPE, LandmarkResponse("bench-1", "ab" * 32, 1_800_000_000, 1000).encode())
    raw_sslib = rate(lambda: key.sign(message), options.seconds)
    pyca_key = Ed25519PrivateKey.generate()
    raw_pyca = rate(lambda: pyca_key.sign(message), options.seconds)

    with tempfile.TemporaryDirectory() as folder:
        key_path, _ = write_key_pair(key, Path(folder) / "bench")
        process, address = start_landmark(key_path)
        try:
            pipelined = pipelined_rate(address, options.window, options.seconds)
            landmark = Landmark("bench-1", key.public, GeoPoint(0, 0), 5000)
            device = SigningKey.generate()
            accuracy_lines = accuracy(address, landmark, device)
            sequential = rate(
                lambda: prove_location(
                    address,
                    landmark,
                    sign_key=device,
                    clock_ns=time.monotonic_ns,
                    now=int(time.time()),
                    rounds=1,
                ),
                options.seconds,
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)

    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print(f"baseline raw Ed25519 sign (securesystemslib): {raw_sslib:10.0f} /s")
    print(f"baseline raw Ed25519 sign (pyca):             {raw_pyca:10.0f} /s")
    print(
        f"landmark responses, {options.window} in flight:      {pipelined:10.0f} /s"
        f"   ratio to raw sslib sign: {pipelined / raw_sslib:.3f}"
    )
    print("accuracy through emulated links (best of 15 rounds):")
    for line in accuracy_lines:
        print(line)
    print(
        f"sequential proofs (1 round each):            {sequential:10.0f} /s"
        f"   ratio to raw sslib sign: {sequential / raw_sslib:.3f}"
    )


if __name__ == "__main__":
    main()
