"""Exception roots shared by every part of flexheg.

Errors are grouped by who is at fault:

* :class:`InputError`: the caller gave input that cannot be used (a truncated file, a wrong key
  file, an invalid option). The message names the value and the fix. The CLI exits with 2.
* :class:`Rejected`: well-formed input that a security check rejects. It carries a stable
  reason code from :class:`Reason`. The CLI exits with 1.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Stable reason codes for every rejection. The string values are part of the interface."""

    MALFORMED = "malformed"
    WRONG_AGREEMENT = "wrong-agreement"
    UNKNOWN_SIGNER = "unknown-signer"
    BAD_SIGNATURE = "bad-signature"
    INSUFFICIENT_APPROVALS = "insufficient-approvals"
    DIGEST_MISMATCH = "digest-mismatch"
    ROLLBACK = "rollback"
    EXPIRED = "expired"
    EXTENSION_EXCEEDS_CAP = "extension-exceeds-cap"
    EXTENSION_MISMATCH = "extension-mismatch"
    SUCCESSION_RULE_VIOLATED = "succession-rule-violated"
    DEVICE_DISABLED = "device-disabled"
    WORKLOAD_DENIED = "workload-denied"
    STALE_NONCE = "stale-nonce"
    # Transparency log.
    NOT_LOGGED = "not-logged"
    BAD_PROOF = "bad-proof"
    INCONSISTENT_LOG = "inconsistent-log"
    WITNESS_QUORUM_NOT_MET = "witness-quorum-not-met"
    # Location and licensing.
    LOCATION_UNVERIFIED = "location-unverified"
    OUTSIDE_REGION = "outside-region"
    WRONG_DEVICE = "wrong-device"
    # Training records and selective disclosure.
    RECORD_MISMATCH = "record-mismatch"
    WRONG_AUDIENCE = "wrong-audience"


class FlexhegError(Exception):
    """Base class of every error that flexheg raises on purpose."""


class InputError(FlexhegError, ValueError):
    """Input that cannot be parsed or used. The message says what to change."""


class Rejected(FlexhegError):
    """A security check rejected well-formed input.

    Attributes:
        reason: the stable reason code.
        expected: what the check required, for people (may be empty).
        actual: what it found, for people (may be empty).
    """

    def __init__(self, reason: Reason, message: str, *, expected: str = "", actual: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {
            "reason": self.reason.value,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
        }
