"""Tools of the parties outside the device: approvers, manufacturers and licensing states."""

from flexheg.authority._approver import sign_approval

__all__ = ["sign_approval"]
