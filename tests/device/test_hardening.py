"""Owner attacks on the device shell found by a fresh attacker: each one fails closed."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path
from unittest import mock

import pytest

from _parties import Parties, run_cli, workload
from flexheg.device import Device
from flexheg.errors import InputError, Reason, Rejected


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


@pytest.fixture
def device(parties: Parties, tmp_path: Path) -> Device:
    return parties.provision(tmp_path / "dev")


def _provision_once(args: tuple[bytes, bytes, str]) -> str:
    from flexheg.wire import SigningKey  # noqa: PLC0415

    payload, manufacturer_pem, folder = args
    manufacturer = SigningKey.from_private_bytes(manufacturer_pem, what="manufacturer")
    try:
        Device.provision(
            Path(folder), agreement_payload=payload, manufacturer_key=manufacturer, device_id="race"
        )
    except InputError:
        return "rejected"
    return "ok"


def test_concurrent_provision_one_winner(parties: Parties, tmp_path: Path) -> None:
    folder = str(tmp_path / "race")
    job = (parties.agreement_payload, parties.manufacturer.private_pem(), folder)
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_provision_once, [job] * 8)
    assert results.count("ok") == 1
    device = Device(Path(folder))
    assert device.status()["disabled"] is False
    assert device.attest("00").payload


@pytest.mark.parametrize("device_id", ["", "a" * 129, "dev/1", "dev 1"])
def test_provision_rejects_bad_device_id(parties: Parties, tmp_path: Path, device_id: str) -> None:
    with pytest.raises(InputError, match="device id"):
        parties.provision(tmp_path / "dev", device_id=device_id)
    assert not (tmp_path / "dev" / "state.json").exists()


def test_transient_seal_key_error_keeps_keys(device: Device) -> None:
    real_read_text = Path.read_text

    def flaky(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "seal.key":
            raise OSError(24, "Too many open files")
        return real_read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    with mock.patch.object(Path, "read_text", flaky), pytest.raises(InputError, match="retry"):
        device.status()
    assert device.status()["disabled"] is False
    assert (device.folder / "seal.key").exists()


def test_missing_identity_key_is_tampering(device: Device) -> None:
    (device.folder / "identity.pem").unlink()
    assert device.status()["disabled"] is True
    with pytest.raises(Rejected) as exc:
        device.attest("00")
    assert exc.value.reason is Reason.DEVICE_DISABLED


def test_swapped_identity_key_is_tampering(parties: Parties, device: Device, tmp_path: Path) -> None:
    other = parties.provision(tmp_path / "other", device_id="dev-2")
    shutil.copy(other.folder / "identity.pem", device.folder / "identity.pem")
    with pytest.raises(Rejected) as exc:
        device.attest("00")
    assert exc.value.reason is Reason.DEVICE_DISABLED
    assert "certificate" in exc.value.message
    assert device.status()["disabled"] is True


def test_run_keeps_its_descriptor(parties: Parties, device: Device) -> None:
    payload = parties.update(1)
    device.install(payload, parties.approve(payload))
    first = device.admit(workload("run-a", 1000, kind="training"))
    assert first.decision.allowed
    relabelled = device.admit(workload("run-a", 0, kind="inference"))
    assert not relabelled.decision.allowed
    assert relabelled.reason_code == Reason.WORKLOAD_DENIED.value
    assert "keeps its descriptor" in relabelled.decision.reason
    assert relabelled.flop_total == 1000


def test_attest_to_unwritable_path_changes_nothing(device: Device, tmp_path: Path) -> None:
    before = device.store.state_path.read_bytes()
    code, document, _ = run_cli("device", "attest", device.folder, "--nonce", "00", "--out", "/dev/null/x")
    assert code == 2
    assert "cannot write" in document["message"]
    assert device.store.state_path.read_bytes() == before
