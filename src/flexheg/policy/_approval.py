"""Approval statements: one approver's signed consent to one action on one subject."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Self

from flexheg.errors import InputError
from flexheg.wire import MAX_SAFE_INTEGER, Fields, Statement


class Action(enum.StrEnum):
    """What an approval consents to."""

    INSTALL = "install"
    EXTEND = "extend"
    CHANGE_APPROVERS = "change-approvers"

    @classmethod
    def parse(cls, value: str, *, what: str) -> Action:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(a.value for a in cls)
            raise InputError(f"{what}: unknown action {value!r}; expected one of {choices}") from None


@dataclass(frozen=True)
class Approval(Statement):
    """An approver's consent to ``action`` on the statement with digest ``subject``.

    ``serial`` is the approver's own counter: an honest approver never signs two different
    subjects under one serial, so two approvals that share a serial and differ in subject prove
    equivocation. ``overrides`` names succession checks the approver deliberately overrode.
    """

    TYPE = "flexheg.dev/approval/v1"

    agreement: str
    action: Action
    subject: str
    approver: str
    serial: int
    time: int
    overrides: tuple[str, ...] = field(default=())

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "agreement": self.agreement,
            "action": self.action.value,
            "subject": self.subject,
            "approver": self.approver,
            "serial": self.serial,
            "time": self.time,
        }
        if self.overrides:
            body["overrides"] = list(self.overrides)
        return body

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        approval = cls(
            agreement=fields.digest("agreement"),
            action=Action.parse(fields.str("action"), what=fields.path("action")),
            subject=fields.digest("subject"),
            approver=fields.str("approver"),
            serial=fields.int("serial", minimum=0, maximum=MAX_SAFE_INTEGER),
            time=fields.int("time", minimum=0),
            overrides=tuple(fields.str_list("overrides")) if fields.has("overrides") else (),
        )
        fields.done()
        return approval
