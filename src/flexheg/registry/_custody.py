"""Chain of custody and verifiable discard.

A hand-over is accepted into a device's chain when (1) both the sender and the receiver are
registered parties and both signed, (2) the sender received the device in the previous hand-over
(or, for the first one, the chain starts at the fab stage), (3) the stage moves exactly one step
forward, (4) the receiver found the package seal intact, and (5) time does not run backwards.
Every hand-over is stored; one that fails a check stores the problem and flags each device it
lists, so a gap or a forged signature is visible in the registry and blocks license renewal.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flexheg.errors import InputError, Reason, Rejected
from flexheg.registry._core import record_change
from flexheg.registry._models import CustodyRecord, Entity, EntityStatus, Party
from flexheg.registry._parties import PartiesMixin, PartyRole, party_key
from flexheg.registry._statements import CustodyHandover, CustodyStage, DestructionRecord
from flexheg.wire import Envelope

logger = logging.getLogger(__name__)

# The party role that may send from each stage.
_SENDER_ROLE = {
    CustodyStage.FAB: PartyRole.FAB,
    CustodyStage.TESTING: PartyRole.TESTING_FACILITY,
    CustodyStage.CUSTOMER: PartyRole.CUSTOMER,
}
_RECEIVER_ROLE = {
    CustodyStage.TESTING: PartyRole.TESTING_FACILITY,
    CustodyStage.CUSTOMER: PartyRole.CUSTOMER,
    CustodyStage.DATA_CENTER: PartyRole.DATA_CENTER,
}


def _signature_problems(session: Session, envelope: Envelope, handover: CustodyHandover) -> list[str]:
    problems = []
    for name, role_map, stage in (
        (handover.sender, _SENDER_ROLE, handover.from_stage),
        (handover.receiver, _RECEIVER_ROLE, handover.to_stage),
    ):
        party = session.get(Party, name)
        if party is None:
            problems.append(f"party {name} is not registered")
            continue
        expected_role = role_map.get(stage)
        if expected_role is None or party.role != expected_role.value:
            problems.append(f"party {name} has role {party.role}, which cannot act at stage {stage}")
        key = party_key(party)
        if not envelope.verified_by({key.keyid: key}):
            problems.append(f"signature of {name} is missing or invalid")
    return problems


def _chain_problems(previous: CustodyRecord | None, handover: CustodyHandover) -> list[str]:
    problems = []
    if handover.to_stage != handover.from_stage.next():
        problems.append(f"stage jumps from {handover.from_stage} to {handover.to_stage}")
    if previous is None:
        if handover.from_stage != CustodyStage.FAB:
            problems.append(f"chain starts at {handover.from_stage} instead of fab")
    else:
        if previous.to_party != handover.sender:
            problems.append(
                f"gap: {handover.sender} sent the device but {previous.to_party} received it last"
            )
        if previous.stage != handover.from_stage:
            problems.append(f"gap: previous hand-over ended at {previous.stage}, not {handover.from_stage}")
        if handover.tick < previous.tick:
            problems.append(f"tick {handover.tick} is earlier than the previous hand-over {previous.tick}")
    if not handover.seal_intact:
        problems.append(f"package seal {handover.package_seal} arrived broken")
    return problems


class CustodyMixin(PartiesMixin):
    def record_handover(self, envelope: Envelope, *, actor: str, now: int) -> dict[str, Any]:
        """Store a signed hand-over for each device it lists and flag devices whose chain breaks.

        Returns the problems found per device (an empty list where the hand-over is accepted).

        Raises:
            InputError: the envelope does not hold a hand-over statement, or lists an
                unregistered device.
        """
        handover = envelope.statement(CustodyHandover, what="custody hand-over")
        envelope_json = json.dumps(envelope.to_dict(), sort_keys=True)
        results: dict[str, list[str]] = {}
        with self.db.write() as session:
            signature_problems = _signature_problems(session, envelope, handover)
            for device_id in handover.device_ids:
                device = self._device(session, device_id, lock=True)
                previous = session.scalars(
                    select(CustodyRecord)
                    .where(CustodyRecord.device_id == device_id, CustodyRecord.kind == "handover")
                    .order_by(CustodyRecord.id.desc())
                    .limit(1)
                ).first()
                problems = signature_problems + _chain_problems(previous, handover)
                problem_text = "; ".join(problems) if problems else None
                session.add(
                    CustodyRecord(
                        device_id=device_id,
                        kind="handover",
                        envelope=envelope_json,
                        from_party=handover.sender,
                        to_party=handover.receiver,
                        stage=handover.to_stage.value,
                        tick=handover.tick,
                        problem=problem_text,
                        actor=actor,
                        at=now,
                    )
                )
                if problem_text is not None and device.custody_problem is None:
                    record_change(
                        session,
                        device,
                        {"custody_problem": problem_text},
                        action="custody-flag",
                        actor=actor,
                        reason=problem_text,
                        now=now,
                    )
                    logger.warning("custody check flagged device %s: %s", device_id, problem_text)
                results[device_id] = problems
        return {"handover": handover.digest(), "problems": results}

    def custody_chain(self, device_id: str, *, owner: str | None = None) -> list[dict[str, Any]]:
        """Return the custody records of a device, oldest first."""
        with self.db.read() as session:
            self._device(session, device_id, owner=owner)
            records = session.scalars(
                select(CustodyRecord).where(CustodyRecord.device_id == device_id).order_by(CustodyRecord.id)
            )
            return [
                {
                    "kind": record.kind,
                    "from_party": record.from_party,
                    "to_party": record.to_party,
                    "stage": record.stage,
                    "tick": record.tick,
                    "problem": record.problem,
                    "envelope": json.loads(record.envelope),
                }
                for record in records
            ]

    def clear_custody_flag(self, device_id: str, *, reason: str, actor: str, now: int) -> dict[str, Any]:
        """Clear a device's custody flag after an inspection resolved it. The reason is recorded."""
        if not reason.strip():
            raise InputError("clearing a custody flag needs a reason")
        with self.db.write() as session:
            device = self._device(session, device_id, lock=True)
            record_change(session, device, {"custody_problem": None}, action="custody-clear",
                          actor=actor, reason=reason, now=now)
        return self.get(device_id)

    def record_destruction(self, envelope: Envelope, *, actor: str, now: int) -> dict[str, Any]:
        """Mark a device discarded on a destruction record signed by a trusted facility.

        Steps: (1) the envelope holds a destruction record; (2) the facility is a registered
        destruction facility and signed it; (3) the record names the registered device and its
        identity key; (4) the device is marked discarded and the record stored.

        Raises:
            Rejected: ``unknown-signer`` for an unregistered or untrusted facility,
                ``bad-signature`` for a missing facility signature, ``malformed`` for a record
                that names another identity key.
        """
        # Step 1: the statement.
        record = envelope.statement(DestructionRecord, what="destruction record")
        with self.db.write() as session:
            # Step 2: the trusted facility's signature.
            party = session.get(Party, record.facility)
            if party is None or party.role != PartyRole.DESTRUCTION_FACILITY.value:
                raise Rejected(
                    Reason.UNKNOWN_SIGNER,
                    f"{record.facility} is not a registered destruction facility",
                    expected=PartyRole.DESTRUCTION_FACILITY.value,
                    actual="unregistered" if party is None else party.role,
                )
            key = party_key(party)
            if not envelope.verified_by({key.keyid: key}):
                raise Rejected(Reason.BAD_SIGNATURE,
                               f"destruction record carries no valid signature of {record.facility}")

            # Step 3: the device and its identity.
            device: Entity = self._device(session, record.device_id, lock=True)
            if device.identity_keyid != record.identity_keyid:
                raise Rejected(
                    Reason.MALFORMED,
                    f"destruction record names another identity key than device {record.device_id}",
                    expected=str(device.identity_keyid),
                    actual=record.identity_keyid,
                )

            # Step 4: discard.
            session.add(
                CustodyRecord(
                    device_id=record.device_id,
                    kind="destruction",
                    envelope=json.dumps(envelope.to_dict(), sort_keys=True),
                    from_party=record.facility,
                    stage="destroyed",
                    tick=record.tick,
                    actor=actor,
                    at=now,
                )
            )
            record_change(session, device, {"status": EntityStatus.DISCARDED.value},
                          action="discard", actor=actor,
                          reason=f"destroyed by {record.facility} ({record.method}): {record.reason}",
                          now=now)
        logger.info("device %s discarded by %s", record.device_id, record.facility)
        return self.get(record.device_id)
