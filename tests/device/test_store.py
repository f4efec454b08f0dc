"""The device shell on real folders: sealing, tamper response, crashes and the device clock."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from unittest import mock

import pytest

from _parties import DAY, START, FakeClock, Parties, workload
from flexheg.device import Device, Evidence, _store, verify_power_log
from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import encode


class PowerCut(Exception):
    pass


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def device(parties: Parties, clock: FakeClock, tmp_path: Path) -> Device:
    return parties.provision(tmp_path / "dev", clock)


def install_version(parties: Parties, device: Device, version: int, lifetime: int = 10 * DAY) -> bytes:
    payload = parties.update(version, lifetime=lifetime)
    device.install(payload, parties.approve(payload))
    return payload


def assert_disabled(device: Device, reason_part: str) -> None:
    status = Device(device.folder, host_clock=FakeClock()).status()
    assert status["disabled"] is True
    assert status["mode"] == "disabled"
    assert reason_part in status["reason"]
    assert not (device.folder / "seal.key").exists()
    assert not (device.folder / "identity.pem").exists()
    with pytest.raises(Rejected) as exc:
        device.admit(workload())
    assert exc.value.reason is Reason.DEVICE_DISABLED


# Integrity of the sealed state.


def test_edited_state_is_tampering(parties: Parties, device: Device) -> None:
    install_version(parties, device, 2)
    path = device.store.state_path
    path.write_bytes(path.read_bytes().replace(b'"highest_version": 2', b'"highest_version": 1'))
    assert_disabled(device, "does not match its MAC")


def test_deleted_seal_key_is_tampering(device: Device) -> None:
    (device.folder / "seal.key").unlink()
    assert_disabled(device, "sealing key is missing")


def test_deleted_state_is_tampering(device: Device) -> None:
    device.store.state_path.unlink()
    assert_disabled(device, "missing")


def test_truncated_state_is_tampering(device: Device) -> None:
    path = device.store.state_path
    path.write_bytes(path.read_bytes()[:100])
    assert_disabled(device, "unreadable")


def test_resealed_invalid_state_fails_closed(device: Device) -> None:
    """An authentic state that does not parse stops every operation but keeps the keys.

    A valid MAC means the device wrote the state, so a parse failure is a format this version
    cannot read (for example a state from a newer flexheg), not tampering.
    """
    document = json.loads(device.store.state_path.read_bytes())
    document["state"]["agreement"] = "###"
    key = bytes.fromhex((device.folder / "seal.key").read_text())
    document["mac"] = _store._mac(key, encode(document["state"])).hex()
    device.store.state_path.write_text(json.dumps(document))
    before = device.store.state_path.read_bytes()
    with pytest.raises(InputError, match="authentic but unreadable"):
        device.status()
    with pytest.raises(InputError, match="authentic but unreadable"):
        device.attest("00")
    assert device.store.state_path.read_bytes() == before
    assert (device.folder / "seal.key").exists()
    assert not device.store.is_disabled()


def test_tamper_sensor_is_permanent(parties: Parties, device: Device) -> None:
    install_version(parties, device, 1)
    device.emulator_tamper("lid")
    restarted = Device(device.folder, host_clock=FakeClock())
    assert restarted.status()["reason"] == "tamper sensor fired: lid"
    payload = parties.update(2)
    for operation in (
        lambda: restarted.install(payload, parties.approve(payload)),
        lambda: restarted.attest("00"),
        restarted.power_log,
        restarted.certificate,
        lambda: restarted.emulator_advance_clock(1),
    ):
        with pytest.raises(Rejected) as exc:
            operation()
        assert exc.value.reason is Reason.DEVICE_DISABLED


def test_deleting_disabled_record_keeps_device_disabled(device: Device) -> None:
    device.emulator_tamper("lid")
    (device.folder / "DISABLED").unlink()
    restarted = Device(device.folder, host_clock=FakeClock())
    status = restarted.status()
    assert status["disabled"] is True
    assert "sealing key is missing" in status["reason"]


def test_state_from_other_device_is_tampering(parties: Parties, device: Device, tmp_path: Path) -> None:
    """A sealed state copied from another device fails the MAC under this device's sealing key."""
    other = parties.provision(tmp_path / "other", FakeClock(), device_id="dev-2")
    device.store.state_path.write_bytes(other.store.state_path.read_bytes())
    assert_disabled(device, "does not match its MAC")


def test_not_a_device_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a device folder"):
        Device(tmp_path / "empty").status()
    with pytest.raises(InputError, match="no such device folder"):
        Device(tmp_path / "absent").status()


def test_provision_twice_rejected(parties: Parties, device: Device) -> None:
    before = device.store.state_path.read_bytes()
    with pytest.raises(InputError, match="already contains a device"):
        parties.provision(device.folder, FakeClock())
    assert device.store.state_path.read_bytes() == before


def test_provision_with_unlisted_manufacturer(parties: Parties, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="manufacturer key is not listed"):
        Device.provision(
            tmp_path / "dev",
            agreement_payload=parties.agreement_payload,
            manufacturer_key=parties.forger,
            device_id="dev-x",
        )
    assert not (tmp_path / "dev").exists()


# Crashes while writing.


class CrashingOs:
    def __init__(self, after_rename: bool) -> None:
        self.after_rename = after_rename

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def replace(self, source: str, target: str) -> None:
        if self.after_rename:
            os.replace(source, target)
        raise PowerCut(target)


@pytest.mark.parametrize("after_rename", [False, True])
def test_crash_during_install(parties: Parties, device: Device, after_rename: bool) -> None:
    install_version(parties, device, 1)
    before = device.store.state_path.read_bytes()
    payload = parties.update(2)
    with mock.patch.object(_store, "os", CrashingOs(after_rename)), pytest.raises(PowerCut):
        device.install(payload, parties.approve(payload))

    restarted = Device(device.folder, host_clock=FakeClock())
    status = restarted.status()
    assert status["disabled"] is False
    assert status["installed_version"] == (2 if after_rename else 1)
    if not after_rename:
        assert device.store.state_path.read_bytes() == before
    assert [p.name for p in device.folder.iterdir() if p.name.endswith(".tmp")] == []


def test_process_killed_during_installs(parties: Parties, tmp_path: Path) -> None:
    """SIGKILL at random moments of a process that installs update after update."""
    device = parties.provision(tmp_path / "dev")
    now = int(time.time())
    updates = tmp_path / "updates"
    updates.mkdir()
    for version in range(1, 400):
        payload = parties.update(version, issued_at=now)
        (updates / f"{version}.json").write_bytes(payload)
        approvals = [envelope.to_dict() for envelope in parties.approve(payload, time=now)]
        (updates / f"{version}.approvals.json").write_text(json.dumps(approvals))
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from flexheg.device import Device
        from flexheg.errors import Rejected
        from flexheg.wire import Envelope
        device, updates = Device(Path(sys.argv[1])), Path(sys.argv[2])
        for version in range(1, 400):
            payload = (updates / f"{version}.json").read_bytes()
            raw = json.loads((updates / f"{version}.approvals.json").read_text())
            approvals = [Envelope.from_dict(item, what="approval") for item in raw]
            try:
                device.install(payload, approvals)
            except Rejected:
                continue
            print(version, flush=True)
        """
    )
    generator = random.Random(7)
    confirmed = 0
    for _ in range(3):
        process = subprocess.Popen(
            [sys.executable, "-c", script, str(device.folder), str(updates)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        time.sleep(generator.uniform(0.8, 1.6))
        process.send_signal(signal.SIGKILL)
        output, _ = process.communicate(timeout=30)
        printed = [int(line) for line in output.split()]
        confirmed = max([confirmed, *printed])

        state = Device(device.folder).state()
        assert state is not None, Device(device.folder).store.disabled_reason()
        assert state.highest_version >= confirmed
        assert state.installed is not None
        assert state.installed.update.version == state.highest_version
    assert confirmed > 0


def test_concurrent_admissions_lose_no_compute(parties: Parties, tmp_path: Path) -> None:
    """Device objects in four threads share one folder; the folder lock serializes them."""
    import threading  # noqa: PLC0415

    device = parties.provision(tmp_path / "dev", FakeClock())
    errors: list[BaseException] = []

    def charge() -> None:
        try:
            own = Device(device.folder, host_clock=FakeClock())
            for _ in range(10):
                own.admit(workload("shared-run", 1000))
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=charge) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    status = device.status()
    assert status["runs"] == {"shared-run": "40000"}
    assert status["counters"]["admitted"] == 40


# The device clock.


def test_host_clock_back_never_revives(parties: Parties, device: Device, clock: FakeClock) -> None:
    install_version(parties, device, 1, lifetime=DAY)
    clock.value += 2 * DAY
    assert device.admit(workload(cluster=1000)).mode.value == "baseline"

    clock.value -= 3 * DAY
    status = device.status()
    assert status["mode"] == "baseline"
    assert status["time"] == START + 2 * DAY
    assert not device.admit(workload(cluster=1000)).decision.allowed


def test_status_read_persists_high_water(parties: Parties, device: Device, clock: FakeClock) -> None:
    install_version(parties, device, 1, lifetime=DAY)
    clock.value += DAY
    assert device.status()["mode"] == "baseline"
    clock.value -= DAY
    assert device.status()["mode"] == "baseline"
    assert device.status()["time"] == START + DAY


def test_advance_clock_expires_update(parties: Parties, device: Device) -> None:
    install_version(parties, device, 1, lifetime=DAY)
    assert device.emulator_advance_clock(DAY) == START + DAY
    assert device.status()["mode"] == "baseline"


def test_advance_clock_backwards_rejected(device: Device) -> None:
    before = device.store.state_path.read_bytes()
    with pytest.raises(InputError, match="only moves forward"):
        device.emulator_advance_clock(-1)
    assert device.store.state_path.read_bytes() == before


def test_lockdown_without_baseline(tmp_path: Path) -> None:
    parties = Parties(baseline=None)
    clock = FakeClock()
    device = parties.provision(tmp_path / "dev", clock)
    assert device.status()["mode"] == "lockdown"
    decision = device.admit(workload()).decision
    assert not decision.allowed
    assert "locked down" in decision.reason


@pytest.mark.parametrize("flop", [-5, True, "100"])
def test_invalid_flop_rejected(device: Device, flop: object) -> None:
    """A charge that would lower a run's total, or that is not an integer, leaves the state alone."""
    device.admit(workload("run-a", 1000))
    before = device.store.state_path.read_bytes()
    with pytest.raises(InputError, match=r"workload\.flop"):
        device.admit({**workload("run-a"), "workload.flop": flop})
    assert device.store.state_path.read_bytes() == before
    with pytest.raises(InputError, match="must not be negative"):
        device.meter("run-a", -1)
    assert device.store.state_path.read_bytes() == before
    assert device.status()["runs"] == {"run-a": "1000"}


# Power log and evidence.


def test_power_log_matches_evidence(parties: Parties, device: Device, clock: FakeClock) -> None:
    device.power("power-off")
    clock.value += 3600
    device.power("power-on")
    envelope = device.attest("nonce-1")
    evidence = envelope.statement(Evidence, what="evidence")
    entries = device.power_log()

    events = verify_power_log(entries, head=evidence.power_log_head, count=evidence.power_log_count)
    assert [event.event for event in events] == ["power-on", "power-off", "power-on"]

    with pytest.raises(InputError, match="entries"):
        verify_power_log(
            entries[:1] + entries[2:], head=evidence.power_log_head, count=evidence.power_log_count
        )
    altered = [dict(entries[0]), *entries[1:]]
    altered[0]["tick"] += 1
    with pytest.raises(InputError, match="does not chain"):
        verify_power_log(altered, head=evidence.power_log_head, count=evidence.power_log_count)


def test_invalid_power_event_rejected(device: Device) -> None:
    before = device.store.state_path.read_bytes()
    with pytest.raises(InputError, match="power event"):
        device.power("power-cycle")
    assert device.store.state_path.read_bytes() == before
