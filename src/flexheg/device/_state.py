"""The sealed state of a guarantee processor, and its JSON form."""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass, field
from typing import Any

from flexheg.device._agreement import Agreement
from flexheg.device._power import PowerEvent, parse_power_event
from flexheg.errors import InputError
from flexheg.policy import Approver
from flexheg.rules import RulesetUpdate
from flexheg.wire import Envelope, Fields, parse_statement, sha256_digest

COUNTERS = ("installs", "extensions", "admitted", "denied", "metered_steps", "attestations")


def _base64_field(fields: Fields, name: str) -> bytes:
    try:
        return base64.b64decode(fields.str(name), validate=True)
    except ValueError:  # binascii.Error, or a string with non-ASCII characters
        raise InputError(f"{fields.path(name)}: not valid base64") from None


class Mode(enum.StrEnum):
    """Which ruleset governs the device right now."""

    ACTIVE = "active"
    BASELINE = "baseline"
    LOCKDOWN = "lockdown"
    DISABLED = "disabled"


@dataclass(frozen=True)
class Installed:
    """The installed update, its current expiry and its extension history."""

    payload: bytes
    update: RulesetUpdate
    digest: str
    not_after: int
    extension_serial: int = 0
    extended_by: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "not_after": self.not_after,
            "extension_serial": self.extension_serial,
            "extended_by": self.extended_by,
        }

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Installed:
        fields = Fields(value, where)
        payload = _base64_field(fields, "payload")
        update = parse_statement(payload, RulesetUpdate, what=f"{where}.payload")
        installed = cls(
            payload=payload,
            update=update,
            digest=sha256_digest(payload),
            not_after=fields.int("not_after", minimum=0),
            extension_serial=fields.int("extension_serial", minimum=0),
            extended_by=fields.int("extended_by", minimum=0),
        )
        fields.done()
        return installed


@dataclass(frozen=True)
class RunAccount:
    """Metered compute of one run, and the workload facts it was admitted with."""

    flop_used: int
    facts: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        facts = {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(self.facts.items())}
        for key, value in facts.items():
            if isinstance(value, int) and not isinstance(value, bool):
                facts[key] = str(value)
        return {"flop_used": str(self.flop_used), "facts": facts}

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> RunAccount:
        fields = Fields(value, where)
        flop_used = fields.big_int("flop_used")
        raw = fields.object("facts")
        facts: dict[str, Any] = {}
        for key in list(raw._value):
            item = raw.raw(key)
            if isinstance(item, list):
                facts[key] = tuple(item)
            elif isinstance(item, str) and item.isdigit() and key in _INT_FACTS:
                facts[key] = int(item)
            else:
                facts[key] = item
        raw.done()
        fields.done()
        return cls(flop_used, facts)


def _read_approvers(fields: Fields) -> tuple[Approver, ...] | None:
    raw = fields.optional_raw("approvers")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InputError(f"{fields.path('approvers')}: expected a list or null")
    return tuple(
        Approver.from_dict(item, where=f"{fields.path('approvers')}[{index}]")
        for index, item in enumerate(raw)
    )


_INT_FACTS = {"workload.flop", "workload.cluster_size", "workload.interconnect_gbps"}


@dataclass(frozen=True)
class DeviceState:
    """Everything a guarantee processor persists. Immutable: operations return a new state."""

    device_id: str
    agreement_payload: bytes
    agreement: Agreement
    certificate: Envelope
    clock_high_water: int
    clock_offset: int = 0
    installed: Installed | None = None
    highest_version: int = 0
    runs: dict[str, RunAccount] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    power_log: tuple[PowerEvent, ...] = ()
    license: Envelope | None = None
    location_proofs: tuple[Envelope, ...] = ()
    checkpoint: str | None = None
    approver_epoch: int = 0
    approvers: tuple[Approver, ...] | None = None
    """The approver set after the latest change, or None while the agreement's set applies."""

    @property
    def current_approvers(self) -> tuple[Approver, ...]:
        return self.approvers if self.approvers is not None else self.agreement.approvers

    @property
    def agreement_digest(self) -> str:
        return sha256_digest(self.agreement_payload)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "agreement": base64.b64encode(self.agreement_payload).decode("ascii"),
            "certificate": self.certificate.to_dict(),
            "clock_high_water": self.clock_high_water,
            "clock_offset": self.clock_offset,
            "installed": None if self.installed is None else self.installed.to_dict(),
            "highest_version": self.highest_version,
            "runs": {run_id: run.to_dict() for run_id, run in sorted(self.runs.items())},
            "counters": dict(sorted(self.counters.items())),
            "power_log": [e.to_dict() for e in self.power_log],
            "license": None if self.license is None else self.license.to_dict(),
            "location_proofs": [p.to_dict() for p in self.location_proofs],
            "checkpoint": self.checkpoint,
            "approver_epoch": self.approver_epoch,
            "approvers": None if self.approvers is None else [a.to_dict() for a in self.approvers],
        }

    @classmethod
    def from_dict(cls, value: object, *, where: str = "device state") -> DeviceState:
        fields = Fields(value, where)
        agreement_payload = _base64_field(fields, "agreement")
        raw_installed = fields.optional_raw("installed")
        raw_license = fields.optional_raw("license")
        counters_fields = fields.object("counters")
        counters = {name: counters_fields.int(name, minimum=0) for name in COUNTERS}
        counters_fields.done()
        runs_fields = fields.object("runs")
        runs = {
            run_id: RunAccount.from_dict(runs_fields.raw(run_id), where=runs_fields.path(run_id))
            for run_id in list(runs_fields._value)
        }
        runs_fields.done()
        state = cls(
            device_id=fields.str("device_id"),
            agreement_payload=agreement_payload,
            agreement=parse_statement(agreement_payload, Agreement, what=f"{where}.agreement"),
            certificate=Envelope.from_dict(fields.raw("certificate"), what=fields.path("certificate")),
            clock_high_water=fields.int("clock_high_water", minimum=0),
            clock_offset=fields.int("clock_offset"),
            installed=(
                None
                if raw_installed is None
                else Installed.from_dict(raw_installed, where=fields.path("installed"))
            ),
            highest_version=fields.int("highest_version", minimum=0),
            runs=runs,
            counters=counters,
            power_log=tuple(
                parse_power_event(item, where=f"{fields.path('power_log')}[{index}]")
                for index, item in enumerate(fields.list("power_log"))
            ),
            license=None if raw_license is None else Envelope.from_dict(raw_license, what="license"),
            location_proofs=tuple(
                Envelope.from_dict(item, what=f"location proof {index}")
                for index, item in enumerate(fields.list("location_proofs"))
            ),
            checkpoint=fields.optional_str("checkpoint"),
            approver_epoch=fields.int("approver_epoch", minimum=0),
            approvers=_read_approvers(fields),
        )
        fields.done()
        if state.installed is not None and state.installed.update.version > state.highest_version:
            raise InputError(f"{where}: installed version is above the highest version seen")
        return state
