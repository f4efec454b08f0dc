"""Approval policies: who must sign what, and the evaluation that says who signed and who is missing."""

from flexheg.policy._approval import Action, Approval
from flexheg.policy._policy import (
    Approver,
    ApproverKey,
    Policy,
    PolicyResult,
    VerifiedApproval,
    check_approver_set,
    evaluate,
    require,
    verify_approvals,
)

__all__ = [
    "Action",
    "Approval",
    "Approver",
    "ApproverKey",
    "Policy",
    "PolicyResult",
    "VerifiedApproval",
    "check_approver_set",
    "evaluate",
    "require",
    "verify_approvals",
]
