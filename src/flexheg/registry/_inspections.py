"""Random inspection rounds and inspection results, including power-log checks."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flexheg.device import verify_power_log
from flexheg.errors import InputError
from flexheg.registry._core import NotFoundError, record_change
from flexheg.registry._custody import CustodyMixin
from flexheg.registry._models import (
    Entity,
    EntityKind,
    EntityStatus,
    Inspection,
    InspectionRound,
    PowerOffPeriod,
)
from flexheg.registry._powerlog import power_off_gaps
from flexheg.registry._sampling import (
    ALGORITHM,
    Stratum,
    allocate,
    select_in_stratum,
    selection_digest,
)

logger = logging.getLogger(__name__)

# Row ids are 32-bit integers on PostgreSQL; a larger id cannot exist.
MAX_ROW_ID = 2**31 - 1


def _inspection_to_dict(inspection: Inspection) -> dict[str, Any]:
    return {
        "id": inspection.id,
        "round_id": inspection.round_id,
        "entity_id": inspection.entity_id,
        "stratum": inspection.stratum,
        "state": inspection.state,
        "seen": inspection.seen,
        "seals_intact": inspection.seals_intact,
        "power_log_checked": inspection.power_log_checked,
        "power_log_head": inspection.power_log_head,
        "power_log_count": inspection.power_log_count,
        "problems": json.loads(inspection.problems),
        "notes": inspection.notes,
        "inspector": inspection.inspector,
        "recorded_at": inspection.recorded_at,
    }


class InspectionsMixin(CustodyMixin):
    def draw_inspection_round(self, *, seed: str, sample_size: int, actor: str, now: int) -> dict[str, Any]:
        """Draw a stratified random sample of active entities from a public seed and plan an
        inspection for each. See :mod:`flexheg.registry._sampling` for the algorithm.
        """
        if not seed.strip():
            raise InputError("the inspection seed must not be empty; use a published checkpoint hash")
        if sample_size < 1:
            raise InputError(f"sample size {sample_size} must be at least 1")
        with self.db.write() as session:
            counts = self._strata_counts(session)
            allocation = allocate(counts, sample_size)
            selected: list[tuple[Stratum, str]] = []
            for stratum in sorted(counts):
                if allocation[stratum] == 0:
                    continue
                ids = session.scalars(
                    select(Entity.id).where(
                        Entity.kind == stratum.kind,
                        Entity.risk_weight == stratum.risk_weight,
                        Entity.status == EntityStatus.ACTIVE.value,
                    )
                )
                for entity_id in select_in_stratum(seed, stratum, ids, allocation[stratum]):
                    selected.append((stratum, entity_id))
            digest = selection_digest(seed, sample_size, counts, allocation, selected)
            round_row = InspectionRound(
                seed=seed,
                algorithm=ALGORITHM,
                sample_size=sample_size,
                population=sum(counts.values()),
                strata=json.dumps({s.name: [counts[s], allocation[s]] for s in sorted(counts)}),
                selection_digest=digest,
                actor=actor,
                at=now,
            )
            session.add(round_row)
            session.flush()
            for stratum, entity_id in selected:
                session.add(
                    Inspection(
                        round_id=round_row.id,
                        entity_id=entity_id,
                        stratum=stratum.name,
                        state="planned",
                        problems="[]",
                    )
                )
            round_id = round_row.id
        logger.info("inspection round %d drawn: %d of %d entities", round_id, len(selected),
                    sum(counts.values()))
        return self.inspection_round(round_id)

    @staticmethod
    def _strata_counts(session: Session) -> dict[Stratum, int]:
        rows = session.execute(
            select(Entity.kind, Entity.risk_weight, func.count())
            .where(Entity.status == EntityStatus.ACTIVE.value)
            .group_by(Entity.kind, Entity.risk_weight)
        )
        return {Stratum(kind, weight): int(count) for kind, weight, count in rows}

    def inspection_round(self, round_id: int) -> dict[str, Any]:
        if not 1 <= round_id <= MAX_ROW_ID:
            raise NotFoundError(f"inspection round {round_id} does not exist")
        with self.db.read() as session:
            round_row = session.get(InspectionRound, round_id)
            if round_row is None:
                raise NotFoundError(f"inspection round {round_id} does not exist")
            inspections = session.scalars(
                select(Inspection).where(Inspection.round_id == round_id).order_by(Inspection.id)
            )
            return {
                "id": round_row.id,
                "seed": round_row.seed,
                "algorithm": round_row.algorithm,
                "sample_size": round_row.sample_size,
                "population": round_row.population,
                "strata": json.loads(round_row.strata),
                "selection_digest": round_row.selection_digest,
                "at": round_row.at,
                "inspections": [_inspection_to_dict(item) for item in inspections],
            }

    def record_inspection(
        self,
        entity_id: str,
        *,
        seen: bool,
        seals_intact: bool | None = None,
        power_log: Sequence[object] | None = None,
        power_log_head: str | None = None,
        power_log_count: int | None = None,
        round_id: int | None = None,
        notes: str = "",
        inspector: str,
        now: int,
    ) -> dict[str, Any]:
        """Record what an inspector found at one entity.

        A device not seen is marked missing; one seen again returns to active. Broken seals
        flag the device's custody. An uploaded power log is verified against the head and count
        the device signed. Every power-off period longer than the configured threshold is stored,
        and it stays a problem until the owner records an explanation.
        """
        if power_log is not None and (power_log_head is None or power_log_count is None):
            raise InputError("a power log needs the head and count from the device's evidence")
        problems: list[str] = []
        with self.db.write() as session:
            entity = self._entity(session, entity_id, lock=True)
            inspection = self._planned_inspection(session, entity, round_id)
            is_device = entity.kind == EntityKind.DEVICE.value
            if power_log is not None and not is_device:
                raise InputError(f"entity {entity_id!r} is a {entity.kind}; only devices keep power logs")

            # Seen or missing.
            if not seen:
                problems.append("not-seen")
                record_change(session, entity, {"status": EntityStatus.MISSING.value},
                              action="inspection", actor=inspector, reason="not seen at inspection",
                              now=now)
            elif entity.status == EntityStatus.MISSING.value:
                record_change(session, entity, {"status": EntityStatus.ACTIVE.value},
                              action="inspection", actor=inspector, reason="seen at inspection",
                              now=now)

            # Seals.
            if seals_intact is False:
                problems.append("seals-broken")
                if is_device and entity.custody_problem is None:
                    record_change(session, entity, {"custody_problem": "seals broken at inspection"},
                                  action="custody-flag", actor=inspector,
                                  reason="seals broken at inspection", now=now)

            # Power log.
            checked: bool | None = None
            if power_log is not None:
                assert power_log_head is not None
                assert power_log_count is not None
                checked, log_problems = self._check_power_log(
                    session, device=entity, inspection=inspection, entries=power_log,
                    head=power_log_head, count=power_log_count, inspector=inspector, now=now,
                )
                problems.extend(log_problems)

            inspection.state = "recorded"
            inspection.seen = seen
            inspection.seals_intact = seals_intact
            inspection.power_log_checked = checked
            inspection.power_log_head = power_log_head
            inspection.power_log_count = power_log_count
            inspection.problems = json.dumps(problems)
            inspection.notes = notes
            inspection.inspector = inspector
            inspection.recorded_at = now
            session.flush()
            result = _inspection_to_dict(inspection)
        if problems:
            logger.warning("inspection of %s found problems: %s", entity_id, ", ".join(problems))
        return result

    @staticmethod
    def _planned_inspection(session: Session, entity: Entity, round_id: int | None) -> Inspection:
        if round_id is not None and not 1 <= round_id <= MAX_ROW_ID:
            raise NotFoundError(f"inspection round {round_id} does not exist")
        if round_id is None:
            inspection = Inspection(entity_id=entity.id, state="planned", problems="[]")
            session.add(inspection)
            session.flush()
            return inspection
        planned = session.scalars(
            select(Inspection).where(Inspection.round_id == round_id, Inspection.entity_id == entity.id)
        ).first()
        if planned is None:
            raise NotFoundError(f"entity {entity.id!r} was not drawn in inspection round {round_id}")
        if planned.state != "planned":
            raise InputError(f"the inspection of {entity.id!r} in round {round_id} is already recorded")
        return planned

    def _check_power_log(
        self,
        session: Session,
        *,
        device: Entity,
        inspection: Inspection,
        entries: Sequence[object],
        head: str,
        count: int,
        inspector: str,
        now: int,
    ) -> tuple[bool, list[str]]:
        try:
            events = verify_power_log(entries, head=head, count=count)
        except InputError as exc:
            # A log that does not match what the device signed is tamper evidence, like a broken
            # seal, so it flags the device until an inspection resolves it.
            logger.warning("power log of %s rejected: %s", device.id, exc)
            if device.custody_problem is None:
                record_change(session, device, {"custody_problem": "power log rejected at inspection"},
                              action="custody-flag", actor=inspector,
                              reason=str(exc), now=now)
            return False, [f"power-log-rejected: {exc}"]
        session.flush()
        threshold = self.config.power_off_threshold
        problems = []
        for gap in power_off_gaps(events, threshold=threshold, now=now):
            stored = session.scalars(
                select(PowerOffPeriod).where(
                    PowerOffPeriod.device_id == device.id, PowerOffPeriod.off_tick == gap.off_tick
                )
            ).first()
            if stored is None:
                stored = PowerOffPeriod(device_id=device.id, off_tick=gap.off_tick,
                                        on_tick=gap.on_tick, inspection_id=inspection.id)
                session.add(stored)
            elif stored.on_tick is None and gap.on_tick is not None:
                stored.on_tick = gap.on_tick
            if stored.explanation is None:
                problems.append(f"unexplained-power-off: {gap.off_tick}..{gap.on_tick}")
        return True, problems

    def power_off_periods(self, device_id: str, *, owner: str | None = None) -> list[dict[str, Any]]:
        """Return the power-off periods over the threshold found in a device's logs."""
        with self.db.read() as session:
            self._device(session, device_id, owner=owner)
            rows = session.scalars(
                select(PowerOffPeriod)
                .where(PowerOffPeriod.device_id == device_id)
                .order_by(PowerOffPeriod.off_tick)
            )
            return [
                {
                    "off_tick": row.off_tick,
                    "on_tick": row.on_tick,
                    "explanation": row.explanation,
                    "explained_by": row.explained_by,
                    "explained_at": row.explained_at,
                }
                for row in rows
            ]

    def explain_power_off(
        self, device_id: str, *, off_tick: int, explanation: str, owner: str, now: int
    ) -> dict[str, Any]:
        """Record the owner's explanation of one power-off period. It cannot be replaced."""
        if not explanation.strip():
            raise InputError("the explanation must not be empty")
        with self.db.write() as session:
            self._device(session, device_id, owner=owner)
            period = session.scalars(
                select(PowerOffPeriod)
                .where(PowerOffPeriod.device_id == device_id, PowerOffPeriod.off_tick == off_tick)
                .with_for_update()
            ).first()
            if period is None:
                raise NotFoundError(f"device {device_id!r} has no recorded power-off period at {off_tick}")
            if period.explanation is not None:
                raise InputError(f"the power-off period of {device_id!r} at {off_tick} is already explained")
            period.explanation = explanation
            period.explained_by = owner
            period.explained_at = now
        logger.info("power-off period of %s at %d explained by %s", device_id, off_tick, owner)
        return {"device_id": device_id, "off_tick": off_tick, "explanation": explanation,
                "explained_by": owner, "explained_at": now}

    def unexplained_power_off_count(self, session: Session, device_id: str) -> int:
        return int(
            session.scalar(
                select(func.count()).select_from(PowerOffPeriod).where(
                    PowerOffPeriod.device_id == device_id, PowerOffPeriod.explanation.is_(None)
                )
            )
            or 0
        )
