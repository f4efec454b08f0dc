"""The ``flexheg landmark`` commands, run in-process, and the landmark server's drop rules."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexheg.cli.landmark import app
from flexheg.device.location import (
    SPEED_OF_LIGHT_M_PER_S,
    Disc,
    GeoPoint,
    Landmark,
    LandmarkResponse,
    LocationChallenge,
    LocationPolicy,
    Region,
    check_landmark_response,
    make_location_proof,
)
from flexheg.location import LandmarkServer
from flexheg.wire import Envelope, SigningKey, loads_strict, write_key_pair

NONCE = "0f" * 32
runner = CliRunner()


def _json(output: str) -> dict[str, object]:
    document = json.loads(output)
    assert isinstance(document, dict)
    return document


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path, SigningKey, SigningKey]:
    """Return policy, device public key and proof paths, and the landmark and device keys."""
    result = runner.invoke(
        app,
        [
            "keygen",
            str(tmp_path / "lm"),
            "--id",
            "geneva-1",
            "--latitude",
            "46.2",
            "--longitude",
            "6.14",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    entry = Landmark.from_dict(
        loads_strict((tmp_path / "lm.landmark.json").read_bytes(), what="entry"), where="entry"
    )
    landmark_key = SigningKey.from_private_bytes((tmp_path / "lm.pem").read_bytes(), what="lm.pem")
    assert entry.key == landmark_key.public

    policy = LocationPolicy(
        landmarks={"geneva-1": entry},
        regions=(
            Region("geneva-200km", Disc(entry.position, 200_000)),
            Region("geneva-50km", Disc(entry.position, 50_000)),
        ),
        max_proof_age_s=600,
    )
    policy_path = tmp_path / "policy.json"
    policy_path.write_text(json.dumps(policy.to_dict()), encoding="utf-8")

    device = SigningKey.generate()
    _, device_pub = write_key_pair(device, tmp_path / "device")
    response = Envelope.sign(LandmarkResponse("geneva-1", NONCE, 1_800_000_000, 1000), landmark_key)
    proof = make_location_proof(
        response,
        landmark=entry,
        nonce=NONCE,
        rtt_ns=1_000_000 + 2 * 100_000 * 1_000_000_000 // SPEED_OF_LIGHT_M_PER_S,
        now=1_800_000_000,
    )
    proof_path = tmp_path / "proof.json"
    proof_path.write_bytes(Envelope.sign(proof, device).to_json())
    return policy_path, device_pub, proof_path, landmark_key, device


def test_keygen_refuses_overwrite(tmp_path: Path) -> None:
    arguments = ["keygen", str(tmp_path / "lm"), "--id", "a-1", "--latitude", "0", "--longitude", "0"]
    assert runner.invoke(app, arguments).exit_code == 0
    again = runner.invoke(app, arguments)
    assert again.exit_code == 2
    assert "already exists" in again.output


def test_locate_inside_region(setup: tuple[Path, Path, Path, SigningKey, SigningKey]) -> None:
    policy, device_pub, proof, _, _ = setup
    arguments = ["locate", "--policy", str(policy), "--device-pub", str(device_pub), str(proof)]
    result = runner.invoke(app, [*arguments, "--now", "2027-01-15T08:00:30Z", "--json"])
    assert result.exit_code == 0, result.output
    document = _json(result.output)
    assert document["location.verified"] is True
    assert document["location.region"] == "geneva-200km"
    assert document["location.proof_age_s"] == 30
    assert document["regions"] == ["geneva-200km"]


def test_locate_required_region_outside(setup: tuple[Path, Path, Path, SigningKey, SigningKey]) -> None:
    policy, device_pub, proof, _, _ = setup
    result = runner.invoke(
        app,
        [
            "locate", "--policy", str(policy), "--device-pub", str(device_pub), str(proof),
            "--now", "2027-01-15T08:00:30Z", "--region", "geneva-50km", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert _json(result.output)["reason"] == "outside-region"


def test_locate_stale_proof_unverified(setup: tuple[Path, Path, Path, SigningKey, SigningKey]) -> None:
    policy, device_pub, proof, _, _ = setup
    result = runner.invoke(
        app,
        [
            "locate", "--policy", str(policy), "--device-pub", str(device_pub), str(proof),
            "--now", "2027-01-15T09:00:00Z", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert _json(result.output)["reason"] == "location-unverified"


def test_locate_unknown_region_input_error(setup: tuple[Path, Path, Path, SigningKey, SigningKey]) -> None:
    policy, device_pub, proof, _, _ = setup
    result = runner.invoke(
        app,
        ["locate", "--policy", str(policy), "--device-pub", str(device_pub), str(proof), "--region", "mars"],
    )
    assert result.exit_code == 2
    assert "not configured" in result.output


def test_prove_unreachable_landmark(
    setup: tuple[Path, Path, Path, SigningKey, SigningKey], tmp_path: Path
) -> None:
    policy, _, _, _, device = setup
    device_key, _ = write_key_pair(device, tmp_path / "device2")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = runner.invoke(
        app,
        [
            "prove", "--policy", str(policy), "--landmark", "geneva-1",
            "--address", f"127.0.0.1:{port}", "--device-key", str(device_key),
            "--rounds", "1", "--timeout", "0.2", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert _json(result.output)["reason"] == "location-unverified"


# --- The landmark server's handling of datagrams, without the socket loop ----------------------


@pytest.fixture
def server() -> Iterator[LandmarkServer]:
    key = SigningKey.generate()
    instance = LandmarkServer(key, "geneva-1", processing_us=2000, tick=lambda: 1_800_000_000)
    yield instance
    instance.close()


def test_server_answers_valid_challenge(server: LandmarkServer) -> None:
    data = server.answer(LocationChallenge("geneva-1", NONCE).encode(), ("127.0.0.1", 9))
    assert data is not None
    landmark = Landmark("geneva-1", server.key.public, GeoPoint(0, 0), 2000)
    envelope = Envelope.from_dict(loads_strict(data, what="r"), what="r")
    response = check_landmark_response(envelope, landmark=landmark, nonce=NONCE, now=1_800_000_000)
    assert response.processing_us == 2000


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"{",
        b'{"type":"flexheg.dev/location-challenge/v1"}',
        LocationChallenge("berlin-1", NONCE).encode(),
        LocationChallenge("geneva-1", NONCE).encode() + b" ",
        b"x" * 600,
    ],
)
def test_server_drops_bad_datagram(server: LandmarkServer, datagram: bytes) -> None:
    assert server.answer(datagram, ("127.0.0.1", 9)) is None
    assert server.dropped == 1
