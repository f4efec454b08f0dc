"""Statements that devices receive or produce: extensions, certificates and evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from flexheg.policy import Approver, check_approver_set
from flexheg.wire import MAX_SAFE_INTEGER, Fields, PublicKey, Statement


@dataclass(frozen=True)
class LifetimeExtension(Statement):
    """Moves the expiry of one installed update (bound by its digest) to ``not_after``.

    ``serial`` increases with every extension of the same update, so an old extension can never
    be replayed after a newer one.
    """

    TYPE = "flexheg.dev/lifetime-extension/v1"

    agreement: str
    update: str
    version: int
    serial: int
    not_after: int

    def body(self) -> dict[str, Any]:
        return {
            "agreement": self.agreement,
            "update": self.update,
            "version": self.version,
            "serial": self.serial,
            "not_after": self.not_after,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        extension = cls(
            agreement=fields.digest("agreement"),
            update=fields.digest("update"),
            version=fields.int("version", minimum=1, maximum=MAX_SAFE_INTEGER),
            serial=fields.int("serial", minimum=1, maximum=MAX_SAFE_INTEGER),
            not_after=fields.int("not_after", minimum=0, maximum=MAX_SAFE_INTEGER),
        )
        fields.done()
        return extension


@dataclass(frozen=True)
class ApproverSetChange(Statement):
    """Replaces the approver set of an agreement, from ``epoch - 1`` to ``epoch``.

    It needs the change-approvers policy satisfied by the old set and by the new set, so that
    neither the outgoing nor the incoming approvers can be bypassed.
    """

    TYPE = "flexheg.dev/approver-set-change/v1"

    agreement: str
    epoch: int
    approvers: tuple[Approver, ...]

    def body(self) -> dict[str, Any]:
        return {
            "agreement": self.agreement,
            "epoch": self.epoch,
            "approvers": [a.to_dict() for a in self.approvers],
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        approvers = tuple(
            Approver.from_dict(item, where=f"{fields.path('approvers')}[{index}]")
            for index, item in enumerate(fields.list("approvers"))
        )
        check_approver_set(approvers, where=fields.path("approvers"))
        change = cls(
            agreement=fields.digest("agreement"),
            epoch=fields.int("epoch", minimum=1, maximum=MAX_SAFE_INTEGER),
            approvers=approvers,
        )
        fields.done()
        return change


@dataclass(frozen=True)
class DeviceCertificate(Statement):
    """The manufacturer's certificate binding a device id to its identity key."""

    TYPE = "flexheg.dev/device-certificate/v1"

    device_id: str
    identity_key: PublicKey
    model: str
    agreement: str
    issued_at: int

    def body(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "identity_key": self.identity_key.to_dict(),
            "model": self.model,
            "agreement": self.agreement,
            "issued_at": self.issued_at,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        certificate = cls(
            device_id=fields.str("device_id"),
            identity_key=PublicKey.from_dict(fields.raw("identity_key"), where=fields.path("identity_key")),
            model=fields.str("model"),
            agreement=fields.digest("agreement"),
            issued_at=fields.int("issued_at", minimum=0),
        )
        fields.done()
        return certificate


@dataclass(frozen=True)
class Evidence(Statement):
    """Attestation evidence (RATS vocabulary): the device's signed claims about its state."""

    TYPE = "flexheg.dev/evidence/v1"

    device_id: str
    nonce: str
    time: int
    agreement: str
    mode: str
    ruleset_version: int
    ruleset_digest: str | None
    not_after: int | None
    extension_serial: int
    counters: dict[str, int]
    power_log_head: str
    power_log_count: int
    checkpoint: str | None
    license: dict[str, Any] | None
    location: dict[str, Any] | None

    def body(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "nonce": self.nonce,
            "time": self.time,
            "agreement": self.agreement,
            "mode": self.mode,
            "ruleset_version": self.ruleset_version,
            "ruleset_digest": self.ruleset_digest,
            "not_after": self.not_after,
            "extension_serial": self.extension_serial,
            "counters": dict(sorted(self.counters.items())),
            "power_log_head": self.power_log_head,
            "power_log_count": self.power_log_count,
            "checkpoint": self.checkpoint,
            "license": self.license,
            "location": self.location,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        counters_fields = fields.object("counters")
        counters = {name: counters_fields.int(name, minimum=0) for name in list(counters_fields._value)}
        counters_fields.done()
        digest = fields.optional_raw("ruleset_digest")
        evidence = cls(
            device_id=fields.str("device_id"),
            nonce=fields.str("nonce"),
            time=fields.int("time", minimum=0),
            agreement=fields.digest("agreement"),
            mode=fields.str("mode"),
            ruleset_version=fields.int("ruleset_version", minimum=0),
            ruleset_digest=None if digest is None else fields.digest("ruleset_digest"),
            not_after=fields.optional_int("not_after", minimum=0),
            extension_serial=fields.int("extension_serial", minimum=0),
            counters=counters,
            power_log_head=fields.digest("power_log_head"),
            power_log_count=fields.int("power_log_count", minimum=0),
            checkpoint=fields.optional_str("checkpoint"),
            license=fields.optional_raw("license"),
            location=fields.optional_raw("location"),
        )
        fields.done()
        return evidence
