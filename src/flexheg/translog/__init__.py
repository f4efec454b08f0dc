"""Append-only Merkle log (RFC 9162) with signed checkpoints, witnesses and equivocation proofs.

The pure checks that a device runs live in :mod:`flexheg.wire.merkle` and
:mod:`flexheg.wire.checkpoint`; this package contains the services around them.
"""

from flexheg.translog.equivocation import (
    EquivocationProof,
    Finding,
    LogForkProof,
    SerialReuseProof,
    StaleExtensionProof,
    parse_proof,
    proof_to_json,
    scan_entries,
    verify_equivocation,
)
from flexheg.translog.gossip import AuditResult, CheckpointPool
from flexheg.translog.log import Appended, TransparencyLog
from flexheg.translog.storage import (
    LogStorage,
    SQLiteLogStorage,
    SQLiteWitnessStorage,
    StoredEntry,
    WitnessStorage,
)
from flexheg.translog.witness import Witness, WitnessConflict, collect_cosignatures

__all__ = [
    "Appended",
    "AuditResult",
    "CheckpointPool",
    "EquivocationProof",
    "Finding",
    "LogForkProof",
    "LogStorage",
    "SQLiteLogStorage",
    "SQLiteWitnessStorage",
    "SerialReuseProof",
    "StaleExtensionProof",
    "StoredEntry",
    "TransparencyLog",
    "Witness",
    "WitnessConflict",
    "WitnessStorage",
    "collect_cosignatures",
    "parse_proof",
    "proof_to_json",
    "scan_entries",
    "verify_equivocation",
]
