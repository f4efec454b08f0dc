"""Signed statements of the supply chain: custody hand-overs and destruction records."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Self

from flexheg.errors import InputError
from flexheg.registry._entities import ID_PATTERN
from flexheg.wire import Fields, Statement


class CustodyStage(enum.StrEnum):
    """Stages of a device's way from production to operation, in order."""

    FAB = "fab"
    TESTING = "testing"
    CUSTOMER = "customer"
    DATA_CENTER = "data-center"

    def next(self) -> CustodyStage | None:
        stages = list(CustodyStage)
        index = stages.index(self)
        return stages[index + 1] if index + 1 < len(stages) else None


def _stage(fields: Fields, name: str) -> CustodyStage:
    value = fields.str(name)
    try:
        return CustodyStage(value)
    except ValueError:
        choices = ", ".join(stage.value for stage in CustodyStage)
        raise InputError(f"{fields.path(name)}: {value!r} is not a custody stage; use {choices}") from None


def _party(fields: Fields, name: str) -> str:
    value = fields.str(name)
    if not ID_PATTERN.fullmatch(value):
        raise InputError(f"{fields.path(name)}: {value!r} is not a valid party name")
    return value


@dataclass(frozen=True)
class CustodyHandover(Statement):
    """A sealed package of devices passing from one party to the next stage.

    The sender and the receiver both sign. The receiver states whether the tamper-evident seal
    with id ``package_seal`` arrived intact.
    """

    TYPE = "flexheg.dev/custody-handover/v1"

    device_ids: tuple[str, ...]
    package_seal: str
    sender: str
    receiver: str
    from_stage: CustodyStage
    to_stage: CustodyStage
    seal_intact: bool
    tick: int

    def body(self) -> dict[str, Any]:
        return {
            "device_ids": list(self.device_ids),
            "package_seal": self.package_seal,
            "sender": self.sender,
            "receiver": self.receiver,
            "from_stage": self.from_stage.value,
            "to_stage": self.to_stage.value,
            "seal_intact": self.seal_intact,
            "tick": self.tick,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        device_ids = fields.str_list("device_ids")
        if not device_ids:
            raise InputError(f"{fields.path('device_ids')}: must list at least one device")
        if device_ids != sorted(set(device_ids)):
            raise InputError(f"{fields.path('device_ids')}: must be sorted and without repeats")
        for device_id in device_ids:
            if not ID_PATTERN.fullmatch(device_id):
                raise InputError(f"{fields.path('device_ids')}: {device_id!r} is not a valid id")
        statement = cls(
            device_ids=tuple(device_ids),
            package_seal=fields.str("package_seal"),
            sender=_party(fields, "sender"),
            receiver=_party(fields, "receiver"),
            from_stage=_stage(fields, "from_stage"),
            to_stage=_stage(fields, "to_stage"),
            seal_intact=fields.bool("seal_intact"),
            tick=fields.int("tick", minimum=0),
        )
        fields.done()
        return statement


@dataclass(frozen=True)
class DestructionRecord(Statement):
    """A trusted facility's record that it destroyed a failed device."""

    TYPE = "flexheg.dev/destruction/v1"

    device_id: str
    identity_keyid: str
    facility: str
    method: str
    reason: str
    tick: int

    def body(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "identity_keyid": self.identity_keyid,
            "facility": self.facility,
            "method": self.method,
            "reason": self.reason,
            "tick": self.tick,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        statement = cls(
            device_id=_party(fields, "device_id"),
            identity_keyid=fields.str("identity_keyid"),
            facility=_party(fields, "facility"),
            method=fields.str("method"),
            reason=fields.str("reason"),
            tick=fields.int("tick", minimum=0),
        )
        fields.done()
        return statement
