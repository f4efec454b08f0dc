"""The device as a state machine under random operations, clock moves and crashes.

Hypothesis drives one emulated device on a real folder through random installs (versions,
approval subsets, lifetimes), extensions, admissions, metering, clock moves (forward through the
emulator, and the host clock moved back) and crashes in the middle of a state write. After every
step a fresh :class:`Device` reloads the folder, as a restarted process would, and checks:

* a rejected install or extension leaves ``state.json`` byte-identical;
* the device is never disabled by a crash (the sealed state is always the old or the new one);
* ``highest_version`` never decreases and the installed update is always the highest version;
* device time never goes back, and an update once seen expired is never active again;
* extensions never add more than the agreement's cap, and no update stays active longer than
  the agreement's maximum lifetime plus its extensions;
* metered compute per run only grows, and no run is forgotten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from _parties import BLOCS, DAY, START, FakeClock, Parties, workload
from flexheg.device import Device, Mode, _store
from flexheg.errors import Rejected
from flexheg.policy import Action

PARTIES = Parties(max_extension=10 * DAY, max_lifetime=30 * DAY)
RUN_IDS = ("run-a", "run-b", "run-c")


class PowerCut(Exception):
    """Raised by the crashing ``os.replace`` in place of the process dying."""


class CrashingOs:
    """The ``os`` module, except that ``replace`` fails before or after it renames."""

    def __init__(self, after_rename: bool) -> None:
        self.after_rename = after_rename

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def replace(self, source: str | Path, target: str | Path) -> None:
        if self.after_rename:
            os.replace(source, target)
        raise PowerCut(f"power cut while replacing {target}")


class DeviceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="flexheg-sm-"))
        self.clock = FakeClock()
        self.device = PARTIES.provision(self.folder / "dev", self.clock)
        self.updates: list[bytes] = []
        self.serial = 0
        self.highest_version = 0
        self.time = START
        self.expired: set[str] = set()
        self.runs: dict[str, int] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # Operations. A rejection is a legitimate outcome, because the invariants judge the state.

    def _install(self, version: int, approvers: set[str], lifetime: int, issued: int) -> None:
        payload = PARTIES.update(version, issued_at=self.time + issued, lifetime=lifetime)
        self.updates.append(payload)
        approvals = PARTIES.approve(payload, Action.INSTALL, sorted(approvers))
        before = self.device.store.state_path.read_bytes()
        try:
            result = self.device.install(payload, approvals)
        except Rejected:
            assert self.device.store.state_path.read_bytes() == before
            return
        assert result.version > self.highest_version

    @rule(
        version=st.integers(1, 8),
        approvers=st.sets(st.sampled_from(BLOCS)),
        lifetime=st.sampled_from([3600, DAY, 5 * DAY, 31 * DAY]),
        issued=st.sampled_from([-2 * DAY, -3600, 0, 3600, 40 * DAY]),
    )
    def install(self, version: int, approvers: set[str], lifetime: int, issued: int) -> None:
        self._install(version, approvers, lifetime, issued)

    def _extend(self, serial: int, add: int, approvers: set[str], index: int) -> None:
        if not self.updates:
            return
        update = self.updates[index % len(self.updates)]
        payload = PARTIES.extension(update, serial=serial, add=add)
        approvals = PARTIES.approve(payload, Action.EXTEND, sorted(approvers))
        before = self.device.store.state_path.read_bytes()
        try:
            self.device.extend(payload, approvals)
        except Rejected:
            assert self.device.store.state_path.read_bytes() == before

    @rule(
        serial=st.integers(1, 6),
        add=st.sampled_from([0, 3600, DAY, 6 * DAY, 11 * DAY]),
        approvers=st.sets(st.sampled_from(BLOCS)),
        age=st.integers(0, 20),
    )
    def extend(self, serial: int, add: int, approvers: set[str], age: int) -> None:
        self._extend(serial, add, approvers, -1 - age)

    @rule(run_id=st.sampled_from(RUN_IDS), flop=st.integers(0, 700_000))
    def admit(self, run_id: str, flop: int) -> None:
        self.device.admit(workload(run_id, flop))

    @rule(run_id=st.sampled_from(RUN_IDS), flop=st.integers(0, 700_000))
    def meter(self, run_id: str, flop: int) -> None:
        try:
            self.device.meter(run_id, flop)
        except Rejected:
            assert run_id not in self.runs

    @rule(seconds=st.sampled_from([1, 3600, DAY, 4 * DAY, 12 * DAY]))
    def advance_device_clock(self, seconds: int) -> None:
        self.device.emulator_advance_clock(seconds)

    @rule(seconds=st.sampled_from([1, 3600, DAY, 6 * DAY]))
    def host_clock_forward(self, seconds: int) -> None:
        self.clock.value += seconds

    @rule(seconds=st.sampled_from([1, 3600, DAY, 6 * DAY, 40 * DAY]))
    def host_clock_back(self, seconds: int) -> None:
        self.clock.value -= seconds

    @rule(
        after_rename=st.booleans(),
        operation=st.sampled_from(["install", "extend", "admit", "advance"]),
        version=st.integers(1, 8),
    )
    def crash_during_write(self, after_rename: bool, operation: str, version: int) -> None:
        with mock.patch.object(_store, "os", CrashingOs(after_rename)):
            try:
                if operation == "install":
                    self._install(version, set(BLOCS), 5 * DAY, 0)
                elif operation == "extend":
                    self._extend(self.serial + version, DAY * version, set(BLOCS), 0)
                elif operation == "admit":
                    self.device.admit(workload("run-a", 1000 * version))
                else:
                    self.device.emulator_advance_clock(3600 * version)
            except PowerCut:
                pass
        leftovers = [p.name for p in (self.folder / "dev").iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []

    # The status read also reads the clock.

    @rule()
    def read_status(self) -> None:
        self.device.status()

    # Invariants, checked on a freshly loaded device after every step.

    @invariant()
    def guarantees_hold(self) -> None:
        restarted = Device(self.folder / "dev", host_clock=self.clock)
        state = restarted.state()
        assert state is not None, restarted.store.disabled_reason()
        status = restarted.status()

        assert state.highest_version >= self.highest_version
        self.highest_version = state.highest_version
        installed = state.installed
        if installed is not None:
            assert installed.update.version == state.highest_version
            assert installed.extended_by == installed.not_after - installed.update.not_after
            assert 0 <= installed.extended_by <= PARTIES.max_extension
            assert installed.update.lifetime <= PARTIES.max_lifetime
            self.serial = max(self.serial, installed.extension_serial)

        assert status["time"] >= self.time
        self.time = status["time"]
        if installed is not None:
            if status["mode"] == Mode.ACTIVE.value:
                assert installed.digest not in self.expired, "an expired update is active again"
                assert status["time"] < installed.not_after
                remaining = installed.not_after - status["time"]
                assert remaining <= PARTIES.max_lifetime + installed.extended_by
            else:
                assert status["time"] >= installed.not_after
                self.expired.add(installed.digest)

        for run_id, used in self.runs.items():
            assert run_id in state.runs, f"run {run_id} was forgotten"
            assert state.runs[run_id].flop_used >= used
        self.runs = {run_id: run.flop_used for run_id, run in state.runs.items()}


DeviceMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestDeviceMachine = DeviceMachine.TestCase
