"""Operating licenses: device-specific, time-limited, signed by one of a set of licensing states.

A device accepts a license when any one configured licensing state signed it, it names this
device and this agreement, and the device time lies in [not_before, not_after].
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import Envelope, Fields, PublicKey, Statement, format_time

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatingLicense(Statement):
    """A licensing state's permission for one device to operate under one agreement.

    ``serial`` increases with each license the state issues for the device; ``not_before`` and
    ``not_after`` are ticks (seconds since the Unix epoch, UTC), both inclusive.
    """

    TYPE = "flexheg.dev/operating-license/v1"

    device_id: str
    agreement: str
    licensing_state: str
    serial: int
    not_before: int
    not_after: int

    def body(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "agreement": self.agreement,
            "licensing_state": self.licensing_state,
            "serial": self.serial,
            "not_before": self.not_before,
            "not_after": self.not_after,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        statement = cls(
            device_id=fields.str("device_id"),
            agreement=fields.digest("agreement"),
            licensing_state=fields.str("licensing_state"),
            serial=fields.int("serial", minimum=0),
            not_before=fields.int("not_before", minimum=0),
            not_after=fields.int("not_after", minimum=0),
        )
        fields.done()
        if statement.not_after < statement.not_before:
            raise InputError(
                f"{fields.path('not_after')}: {statement.not_after} is before not_before "
                f"{statement.not_before}"
            )
        return statement


def verify_license(
    envelope: Envelope,
    *,
    device_id: str,
    agreement_digest: str,
    licensing_states: Mapping[str, Sequence[PublicKey]],
    now: int,
) -> OperatingLicense:
    """Check an operating license for this device at device time ``now``.

    Steps: (1) parse the license; (2) it names this device; (3) it names this agreement;
    (4) its licensing state is configured; (5) one of that state's keys signed it; (6) ``now``
    lies within [not_before, not_after].

    Raises:
        Rejected: with reason ``malformed``, ``wrong-device``, ``wrong-agreement``,
            ``unknown-signer``, ``bad-signature`` or ``expired`` (also before not_before).
    """
    # Step 1: parse.
    try:
        license_ = envelope.statement(OperatingLicense, what="operating license")
    except InputError as exc:
        raise Rejected(Reason.MALFORMED, str(exc)) from None

    # Step 2: this device.
    if license_.device_id != device_id:
        raise Rejected(
            Reason.WRONG_DEVICE,
            "the license is for another device",
            expected=device_id,
            actual=license_.device_id,
        )

    # Step 3: this agreement.
    if license_.agreement != agreement_digest:
        raise Rejected(
            Reason.WRONG_AGREEMENT,
            "the license is for another agreement",
            expected=agreement_digest,
            actual=license_.agreement,
        )

    # Step 4: a configured licensing state. An empty key list counts as not configured.
    keys = licensing_states.get(license_.licensing_state, ())
    if not keys:
        raise Rejected(
            Reason.UNKNOWN_SIGNER,
            f"{license_.licensing_state} is not a licensing state of this device",
            expected=", ".join(sorted(licensing_states)) or "(no licensing states configured)",
            actual=license_.licensing_state,
        )

    # Step 5: that state's signature.
    if not envelope.verified_by({key.keyid: key for key in keys}):
        raise Rejected(
            Reason.BAD_SIGNATURE,
            f"the license carries no valid signature of {license_.licensing_state}",
            expected=", ".join(sorted(key.keyid for key in keys)),
            actual=", ".join(sorted(s.keyid for s in envelope.signatures)) or "(no signatures)",
        )

    # Step 6: the validity period.
    if not license_.not_before <= now <= license_.not_after:
        raise Rejected(
            Reason.EXPIRED,
            "the license is not valid at the device time",
            expected=f"{format_time(license_.not_before)} to {format_time(license_.not_after)}",
            actual=format_time(now),
        )
    logger.debug("license %d of %s from %s accepted", license_.serial, device_id, license_.licensing_state)
    return license_
