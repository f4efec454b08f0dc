"""The emulated device: the pure processor, its sealed store and its clock, in one folder.

Every operation reads the clock once, loads and checks the sealed state under a folder lock,
runs the pure operation, and saves the new state only if the operation succeeded. Input errors
and rejections leave ``state.json`` byte-identical.

The device clock is the host clock plus an emulator offset, but never earlier than the persisted
high-water mark, so moving the host clock back never revives an expired update.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from flexheg.device import _processor as processor
from flexheg.device._agreement import Agreement
from flexheg.device._power import power_log_head
from flexheg.device._state import DeviceState, Mode
from flexheg.device._statements import DeviceCertificate
from flexheg.device._store import IDENTITY_FILE, IntegrityError, SealedStore
from flexheg.device.license import OperatingLicense, verify_license
from flexheg.device.location import LocationPolicy, LocationStatus, decide_location, verify_location_proof
from flexheg.errors import InputError, Reason, Rejected
from flexheg.rules import facts_in
from flexheg.wire import Envelope, SigningKey, Statement, parse_statement, sha256_digest

logger = logging.getLogger(__name__)

T = TypeVar("T")

HostClock = Callable[[], float]


class Device:
    """One emulated guarantee processor stored in ``folder``."""

    def __init__(self, folder: Path, *, host_clock: HostClock = time.time) -> None:
        self.folder = Path(folder)
        self.store = SealedStore(self.folder)
        self._host_clock = host_clock

    # Provisioning.

    @classmethod
    def provision(
        cls,
        folder: Path,
        *,
        agreement_payload: bytes,
        manufacturer_key: SigningKey,
        device_id: str,
        model: str = "flexheg-emulated",
        host_clock: HostClock = time.time,
    ) -> Device:
        """Assemble a device: write the agreement, make an identity key and certify it."""
        if not _DEVICE_ID_RE.fullmatch(device_id):
            raise InputError(
                f"device id {device_id[:80]!r} is invalid; use 1 to 128 letters, digits, '.', '_' or '-'"
            )
        agreement = parse_statement(agreement_payload, Agreement, what="agreement")
        manufacturer_ids = {k.keyid for k in agreement.manufacturers}
        if manufacturer_key.keyid not in manufacturer_ids:
            raise InputError(
                "the manufacturer key is not listed in the agreement; pass the key whose public half "
                "was given to 'flexheg agreement create --manufacturer'"
            )
        device = cls(folder, host_clock=host_clock)
        now = int(host_clock())
        identity = SigningKey.generate()
        certificate = DeviceCertificate(
            device_id, identity.public, model, sha256_digest(agreement_payload), now
        )
        state = DeviceState(
            device_id=device_id,
            agreement_payload=agreement_payload,
            agreement=agreement,
            certificate=Envelope.sign(certificate, manufacturer_key),
            clock_high_water=now,
        )
        state = processor.power_event(state, "power-on", now)
        Path(folder).mkdir(parents=True, exist_ok=True)
        with device.store.locked():
            device.store.create(state.to_dict(), identity.private_pem())
        logger.info("provisioned device %s in %s", device_id, folder)
        return device

    # Loading and saving.

    def _load(self) -> DeviceState | None:
        """Load the state; None when disabled. An integrity failure triggers the tamper response."""
        if not self.store.is_device_folder():
            raise InputError(
                f"{self.folder}: not a device folder; create one with 'flexheg device provision'"
            )
        if self.store.is_disabled():
            return None
        try:
            raw = self.store.load()
            if not self.store.has_key(IDENTITY_FILE):
                raise IntegrityError("the identity key is missing")
        except IntegrityError as exc:
            self.store.erase_keys(f"sealed state failed its integrity check: {exc}", int(self._host_clock()))
            return None
        try:
            return DeviceState.from_dict(raw)
        except InputError as exc:
            # The MAC is valid, so the device itself wrote this state: a format this version of
            # flexheg cannot read, not tampering. The keys stay.
            raise InputError(
                f"{self.store.state_path}: authentic but unreadable device state ({exc})"
            ) from None

    def now(self, state: DeviceState) -> int:
        """Return the device time: host time plus the emulator offset, never below the high-water mark."""
        return max(int(self._host_clock()) + state.clock_offset, state.clock_high_water)

    def _operate(self, operation: Callable[[DeviceState | None, int], tuple[DeviceState, T]]) -> T:
        with self.store.locked():
            state = self._load()
            now = self.now(state) if state is not None else int(self._host_clock())
            new_state, result = operation(state, now)
            self.store.save(new_state.to_dict())
            return result

    def _identity_key(self, state: DeviceState | None = None) -> SigningKey:
        """Load the identity key; a key that is unreadable or not the certified one is tampering."""
        certified = None
        if state is not None:
            certified = state.certificate.statement(DeviceCertificate, what="certificate").identity_key
        try:
            key = SigningKey.from_private_bytes(
                self.store.read_key(IDENTITY_FILE), what="device identity key"
            )
        except (OSError, InputError) as exc:
            reason = f"the identity key is unreadable ({exc})"
        else:
            if certified is None or key.keyid == certified.keyid:
                return key
            reason = "the identity key is not the one in the device certificate"
        self.store.erase_keys(f"tamper response: {reason}", int(self._host_clock()))
        raise Rejected(Reason.DEVICE_DISABLED, f"the device is disabled: {reason}")

    # Operations.

    def install(
        self, payload: bytes, approvals: Sequence[Envelope], *, log_bundle: bytes | None = None
    ) -> processor.InstallResult:
        return self._operate(
            lambda state, now: processor.install(state, payload, approvals, now, log_bundle=log_bundle)
        )

    def extend(
        self, payload: bytes, approvals: Sequence[Envelope], *, log_bundle: bytes | None = None
    ) -> processor.ExtendResult:
        return self._operate(
            lambda state, now: processor.extend(state, payload, approvals, now, log_bundle=log_bundle)
        )

    def change_approvers(
        self, payload: bytes, approvals: Sequence[Envelope], *, log_bundle: bytes | None = None
    ) -> processor.ChangeResult:
        return self._operate(
            lambda state, now: processor.change_approvers(
                state, payload, approvals, now, log_bundle=log_bundle
            )
        )

    def admit(self, facts: dict[str, Any]) -> processor.AdmitResult:
        """Admit a workload. A denial by a rule that reads location facts carries the location reason."""

        def run(state: DeviceState | None, now: int) -> tuple[DeviceState, processor.AdmitResult]:
            new_state, result = processor.admit(state, facts, now, extra_facts=self._device_facts(state, now))
            return new_state, self._with_location_reason(new_state, now, result)

        return self._operate(run)

    def _with_location_reason(
        self, state: DeviceState, now: int, result: processor.AdmitResult
    ) -> processor.AdmitResult:
        if result.decision.allowed:
            return result
        ruleset = processor.active_ruleset(state, now)
        rule = ruleset.rule(result.decision.rule) if ruleset and result.decision.rule else None
        status = _location_status(state, now)
        if rule is None or status is None or status.reason is None:
            return result
        if not any(name.startswith("location.") for name in facts_in(rule.expr)):
            return result
        return dataclasses.replace(result, reason_code=status.reason.value)

    def meter(self, run_id: str, flop: int) -> processor.AdmitResult:
        return self._operate(
            lambda state, now: processor.meter(
                state, run_id, flop, now, extra_facts=self._device_facts(state, now)
            )
        )

    def attest(self, nonce: str) -> Envelope:
        """Return an evidence file document: the signed evidence and the device certificate."""

        def run(state: DeviceState | None, now: int) -> tuple[DeviceState, Envelope]:
            enabled = processor._check_enabled(state)
            return processor.attest(enabled, self._identity_key(enabled), nonce, now)

        return self._operate(run)

    def certificate(self) -> Envelope:
        with self.store.locked():
            state = processor._check_enabled(self._load())
            return state.certificate

    def power(self, event: str) -> None:
        self._operate(lambda state, now: (processor.power_event(state, event, now), None))

    def status(self) -> dict[str, Any]:
        """Return the device's state for people and scripts; reports a disabled device too."""
        with self.store.locked():
            state = self._load()
            if state is None:
                return {
                    "device": self.folder.name,
                    "mode": Mode.DISABLED.value,
                    "disabled": True,
                    "reason": self.store.disabled_reason(),
                }
            now = self.now(state)
            if now > state.clock_high_water:
                # A report of the time (and of an expiry) must never be contradicted later, so a
                # status read raises the persisted high-water mark like any operation does.
                state = dataclasses.replace(state, clock_high_water=now)
                self.store.save(state.to_dict())
            installed = state.installed
            mode = processor.mode_at(state, now)
            return {
                "device_id": state.device_id,
                "disabled": False,
                "mode": mode.value,
                "time": now,
                "agreement": state.agreement_digest,
                "installed_version": installed.update.version if installed else None,
                "installed_digest": installed.digest if installed else None,
                "not_after": installed.not_after if installed else None,
                "extension_serial": installed.extension_serial if installed else 0,
                "highest_version": state.highest_version,
                "approver_epoch": state.approver_epoch,
                "approvers": [a.id for a in state.current_approvers],
                "runs": {run_id: str(run.flop_used) for run_id, run in state.runs.items()},
                "counters": state.counters,
                "power_log_head": power_log_head(state.power_log),
                "power_log_count": len(state.power_log),
            }

    def power_log(self) -> list[dict[str, Any]]:
        with self.store.locked():
            state = processor._check_enabled(self._load())
            return [event.to_dict() for event in state.power_log]

    def state(self) -> DeviceState | None:
        with self.store.locked():
            return self._load()

    # Emulator-only actions: a real device never offers these to its owner.

    def emulator_advance_clock(self, seconds: int) -> int:
        """Move the device clock forward by ``seconds``; return the new device time."""
        if seconds < 0:
            raise InputError(f"cannot move the device clock back ({seconds} s); it only moves forward")
        if seconds > MAX_CLOCK_ADVANCE:
            raise InputError(
                f"cannot move the device clock forward by {seconds} s; the maximum is {MAX_CLOCK_ADVANCE} s "
                "(100 years)"
            )

        def run(state: DeviceState | None, now: int) -> tuple[DeviceState, int]:
            enabled = processor._check_enabled(state)
            new_now = now + seconds
            offset = new_now - int(self._host_clock())
            return dataclasses.replace(enabled, clock_offset=offset, clock_high_water=new_now), new_now

        return self._operate(run)

    def emulator_tamper(self, sensor: str = "enclosure") -> None:
        """Fire a tamper sensor: erase the keys and disable the device for good."""
        with self.store.locked():
            if not self.store.is_device_folder():
                raise InputError(f"{self.folder}: not a device folder")
            self.store.erase_keys(f"tamper sensor fired: {sensor}", int(self._host_clock()))

    def install_license(self, envelope: Envelope, *, log_bundle: bytes | None = None) -> OperatingLicense:
        """Verify an operating license against the agreement's licensing states and keep it.

        When the agreement names a transparency log, the license (its envelope JSON) must be
        proved to be in the log, like updates and approvals.
        """

        def run(state: DeviceState | None, now: int) -> tuple[DeviceState, OperatingLicense]:
            enabled = processor._check_enabled(state)
            license_ = verify_license(
                envelope,
                device_id=enabled.device_id,
                agreement_digest=enabled.agreement_digest,
                licensing_states={s.id: s.keys for s in enabled.agreement.licensing_states},
                now=now,
            )
            checkpoint = processor.check_logged(enabled, envelope.to_json(), [], log_bundle)
            new_state = dataclasses.replace(
                enabled, license=envelope, checkpoint=checkpoint, clock_high_water=now
            )
            return new_state, license_

        return self._operate(run)

    def add_location_proof(self, envelope: Envelope) -> None:
        """Keep a location proof signed by this device (the newest ``MAX_LOCATION_PROOFS``)."""

        def run(state: DeviceState | None, now: int) -> tuple[DeviceState, None]:
            enabled = processor._check_enabled(state)
            policy = location_policy(enabled.agreement)
            if policy is None:
                raise InputError("the agreement configures no landmarks, so location proofs cannot be used")
            identity = enabled.certificate.statement(DeviceCertificate, what="certificate").identity_key
            verify_location_proof(envelope, device_key=identity, policy=policy)
            proofs = (*enabled.location_proofs, envelope)[-MAX_LOCATION_PROOFS:]
            return dataclasses.replace(enabled, location_proofs=proofs, clock_high_water=now), None

        self._operate(run)

    def prove_location(
        self, measure: Callable[[SigningKey, LocationPolicy, int], Envelope]
    ) -> LocationStatus:
        """Measure a location proof with ``measure`` and keep it; return what the proofs now establish.

        ``measure`` receives the identity key, the agreement's location policy and the device time,
        talks to a landmark (see :func:`flexheg.location.prove_location`) and returns the signed
        proof. The device checks the proof before it keeps it.
        """

        def run(state: DeviceState | None, now: int) -> tuple[DeviceState, LocationStatus]:
            enabled = processor._check_enabled(state)
            policy = location_policy(enabled.agreement)
            if policy is None:
                raise InputError(
                    "the agreement configures no landmarks, so the device cannot prove its location"
                )
            envelope = measure(self._identity_key(enabled), policy, now)
            identity = enabled.certificate.statement(DeviceCertificate, what="certificate").identity_key
            verify_location_proof(envelope, device_key=identity, policy=policy)
            proofs = (*enabled.location_proofs, envelope)[-MAX_LOCATION_PROOFS:]
            new_state = dataclasses.replace(enabled, location_proofs=proofs, clock_high_water=now)
            status = decide_location(proofs, device_key=identity, policy=policy, now=now)
            return new_state, status

        return self._operate(run)

    def sign_with_identity(self, data_to_sign: Callable[[DeviceState, int], Statement]) -> Envelope:
        """Sign a statement that the caller builds from the current state and time."""

        def run(state: DeviceState | None, now: int) -> tuple[DeviceState, Envelope]:
            enabled = processor._check_enabled(state)
            return enabled, Envelope.sign(data_to_sign(enabled, now), self._identity_key(enabled))

        return self._operate(run)

    def location_status(self) -> LocationStatus | None:
        with self.store.locked():
            state = processor._check_enabled(self._load())
            return _location_status(state, self.now(state))

    def _device_facts(self, state: DeviceState | None, now: int) -> dict[str, Any]:
        """Compute device-level facts: a valid license, and what the location proofs establish."""
        if state is None:
            return {}
        facts: dict[str, Any] = {"device.licensed": _licensed(state, now)}
        status = _location_status(state, now)
        if status is not None:
            facts.update(status.facts())
        return facts


MAX_LOCATION_PROOFS = 16
_DEVICE_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_CLOCK_ADVANCE = 100 * 365 * 86400


def location_policy(agreement: Agreement) -> LocationPolicy | None:
    """Return the agreement's location policy (its ``extra.location`` section), if any."""
    raw = agreement.extra.get("location")
    return None if raw is None else LocationPolicy.from_dict(raw, where="agreement.extra.location")


def _location_status(state: DeviceState, now: int) -> LocationStatus | None:
    policy = location_policy(state.agreement)
    if policy is None:
        return None
    identity = state.certificate.statement(DeviceCertificate, what="certificate").identity_key
    return decide_location(state.location_proofs, device_key=identity, policy=policy, now=now)


def _licensed(state: DeviceState, now: int) -> bool:
    if state.license is None:
        return False
    try:
        verify_license(
            state.license,
            device_id=state.device_id,
            agreement_digest=state.agreement_digest,
            licensing_states={s.id: s.keys for s in state.agreement.licensing_states},
            now=now,
        )
    except Rejected:
        return False
    return True


def require_enabled(device: Device) -> None:
    if device.store.is_disabled():
        raise Rejected(Reason.DEVICE_DISABLED, f"device disabled: {device.store.disabled_reason()}")
