"""License renewal: the registry issues operating licenses to devices in good standing only."""

from __future__ import annotations

import enum
import json
import logging
from typing import Any

from sqlalchemy import func, select

from flexheg.device.license import OperatingLicense
from flexheg.errors import InputError
from flexheg.registry._inspections import InspectionsMixin
from flexheg.registry._models import Entity, EntityStatus, LicenseDecision
from flexheg.wire import Envelope, SigningKey, check_digest

logger = logging.getLogger(__name__)


class RefusalReason(enum.StrEnum):
    """Why the registry refused to renew a license. The values are stored and part of the API."""

    DISCARDED = "discarded"
    MISSING = "device-missing"
    ATTESTATION_OVERDUE = "attestation-overdue"
    AWAY_FROM_REGISTERED_LOCATION = "away-from-registered-location"
    CUSTODY_FLAGGED = "custody-flagged"
    UNEXPLAINED_POWER_OFF = "unexplained-power-off"


class LicensingMixin(InspectionsMixin):
    def refusal_reasons(self, device: Entity, unexplained_power_off: int, *, now: int) -> list[str]:
        """Return every reason that ``device`` is not in good standing at ``now``."""
        reasons = []
        if device.status == EntityStatus.DISCARDED.value:
            reasons.append(RefusalReason.DISCARDED.value)
        if device.status == EntityStatus.MISSING.value:
            reasons.append(RefusalReason.MISSING.value)
        last = device.last_attested_at if device.last_attested_at is not None else device.created_at
        if last < now - self.config.attestation_deadline:
            reasons.append(RefusalReason.ATTESTATION_OVERDUE.value)
        if device.away_since is not None:
            reasons.append(RefusalReason.AWAY_FROM_REGISTERED_LOCATION.value)
        if device.custody_problem is not None:
            reasons.append(RefusalReason.CUSTODY_FLAGGED.value)
        if unexplained_power_off:
            reasons.append(RefusalReason.UNEXPLAINED_POWER_OFF.value)
        return reasons

    def renew_license(
        self,
        device_id: str,
        *,
        licensing_state: str,
        signing_key: SigningKey,
        agreement_digest: str,
        actor: str,
        now: int,
        validity: int | None = None,
    ) -> dict[str, Any]:
        """Issue the next operating license for a device in good standing, or record a refusal.

        Returns the decision: ``granted``, ``reasons`` (empty when granted) and, when granted,
        the signed ``license`` envelope, valid from ``now`` for ``validity`` seconds (default:
        the configured license validity). Both outcomes are stored.
        """
        check_digest(agreement_digest, what="agreement digest")
        validity = self.config.license_validity if validity is None else validity
        if validity <= 0:
            raise InputError(f"license validity {validity} must be a positive number of seconds")
        with self.db.write() as session:
            device = self._device(session, device_id, lock=True)
            reasons = self.refusal_reasons(
                device, self.unexplained_power_off_count(session, device_id), now=now
            )
            decision = LicenseDecision(
                device_id=device_id,
                licensing_state=licensing_state,
                granted=not reasons,
                reasons=json.dumps(reasons),
                actor=actor,
                at=now,
            )
            if not reasons:
                last_serial = session.scalar(
                    select(func.max(LicenseDecision.serial)).where(
                        LicenseDecision.device_id == device_id,
                        LicenseDecision.licensing_state == licensing_state,
                    )
                )
                license_ = OperatingLicense(
                    device_id=device_id,
                    agreement=agreement_digest,
                    licensing_state=licensing_state,
                    serial=(last_serial or 0) + 1,
                    not_before=now,
                    not_after=now + validity,
                )
                envelope = Envelope.sign(license_, signing_key)
                decision.serial = license_.serial
                decision.not_before = license_.not_before
                decision.not_after = license_.not_after
                decision.envelope = json.dumps(envelope.to_dict(), sort_keys=True)
            session.add(decision)
            session.flush()
            result = _decision_to_dict(decision)
        if reasons:
            logger.warning("license renewal of %s for %s refused: %s", device_id, licensing_state,
                           ", ".join(reasons))
        else:
            logger.info("license %d of %s issued for %s", result["serial"], device_id, licensing_state)
        return result

    def license_decisions(self, device_id: str, *, owner: str | None = None) -> list[dict[str, Any]]:
        """Return every renewal decision of a device, oldest first."""
        with self.db.read() as session:
            self._device(session, device_id, owner=owner)
            rows = session.scalars(
                select(LicenseDecision)
                .where(LicenseDecision.device_id == device_id)
                .order_by(LicenseDecision.id)
            )
            return [_decision_to_dict(row) for row in rows]


def _decision_to_dict(decision: LicenseDecision) -> dict[str, Any]:
    return {
        "id": decision.id,
        "device_id": decision.device_id,
        "licensing_state": decision.licensing_state,
        "granted": decision.granted,
        "reasons": json.loads(decision.reasons),
        "serial": decision.serial,
        "not_before": decision.not_before,
        "not_after": decision.not_after,
        "license": None if decision.envelope is None else json.loads(decision.envelope),
        "at": decision.at,
    }
