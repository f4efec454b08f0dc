"""Signing approvals as one approver."""

from __future__ import annotations

from collections.abc import Sequence

from flexheg.policy import Action, Approval
from flexheg.wire import Envelope, SigningKey


def sign_approval(
    key: SigningKey,
    *,
    approver: str,
    agreement: str,
    action: Action,
    subject: str,
    serial: int,
    now: int,
    overrides: Sequence[str] = (),
) -> Envelope:
    """Sign one approval statement.

    NOTE: this signs whatever serial it is given. Approvers that must never equivocate use the
    ledger-backed signer in :mod:`flexheg.authority.ledger`, which assigns serials itself.
    """
    approval = Approval(agreement, action, subject, approver, serial, now, tuple(overrides))
    return Envelope.sign(approval, key)
