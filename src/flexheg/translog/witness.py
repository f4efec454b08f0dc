"""Witnesses: cosign a log checkpoint only after checking that it extends the last one cosigned.

The request follows the ``add-checkpoint`` call of C2SP tlog-witness: the log sends the size of
the checkpoint it believes the witness last cosigned (``old``), a consistency proof from that size
and the new signed checkpoint. The witness

1. checks that it trusts the log and that the log signed the checkpoint (``not-logged``);
2. checks ``old`` against its own stored size, else answers :class:`WitnessConflict` with the
   size it has, so that the log can retry with the right proof;
3. verifies the consistency proof from its stored checkpoint (``inconsistent-log``); two signed
   checkpoints of one size with different roots are kept as a :class:`LogForkProof`;
4. stores the new checkpoint (compare-and-swap, fsynced) and only then cosigns it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

from flexheg.errors import InputError, Reason, Rejected
from flexheg.translog.equivocation import LogForkProof
from flexheg.translog.storage import WitnessStorage
from flexheg.wire.checkpoint import (
    Checkpoint,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    check_consistent,
    verify_checkpoint,
)

logger = logging.getLogger(__name__)


class WitnessConflict(Exception):
    """The log's ``old`` size is not the size the witness last cosigned."""

    def __init__(self, origin: str, expected_size: int, actual_size: int) -> None:
        super().__init__(
            f"witness has cosigned {origin} up to size {actual_size}, not {expected_size}; "
            f"send a consistency proof from size {actual_size}"
        )
        self.origin = origin
        self.size = actual_size


class Cosigner(Protocol):
    """Anything that takes an add-checkpoint request: a local :class:`Witness` or an HTTP client."""

    @property
    def name(self) -> str: ...

    def add_checkpoint(
        self, *, old_size: int, proof: Sequence[bytes], checkpoint: bytes, now: int
    ) -> NoteSignature: ...


class ConsistencyProofSource(Protocol):
    def __call__(self, old_size: int, new_size: int) -> list[bytes]: ...


class Witness:
    """A witness over a set of known logs, with its state in a :class:`WitnessStorage`."""

    def __init__(
        self, storage: WitnessStorage, signer: NoteSigner, logs: Mapping[str, NoteVerifier]
    ) -> None:
        self._storage = storage
        self._signer = signer
        self._logs = dict(logs)
        self._lock = threading.Lock()
        self.forks: list[LogForkProof] = []

    @property
    def name(self) -> str:
        return self._signer.name

    def verifier(self) -> NoteVerifier:
        return self._signer.cosignature_verifier()

    def latest(self, origin: str) -> Checkpoint | None:
        note = self._storage.latest(origin)
        return None if note is None else Checkpoint.parse(note)

    def add_checkpoint(
        self, *, old_size: int, proof: Sequence[bytes], checkpoint: bytes, now: int
    ) -> NoteSignature:
        """Verify and cosign ``checkpoint``; see the module docstring for the steps."""
        try:
            new = Checkpoint.parse(checkpoint)
        except InputError as exc:
            raise Rejected(Reason.MALFORMED, str(exc)) from None

        # Step 1: known log, valid log signature.
        log_key = self._logs.get(new.origin)
        if log_key is None:
            raise Rejected(
                Reason.NOT_LOGGED,
                f"witness {self.name} does not know log {new.origin!r}",
                expected=", ".join(sorted(self._logs)),
                actual=new.origin,
            )
        verify_checkpoint(new, log_key)

        with self._lock:
            # Step 2: the log's idea of our state.
            stored_note = self._storage.latest(new.origin)
            stored = None if stored_note is None else Checkpoint.parse(stored_note)
            stored_size = 0 if stored is None else stored.size
            if old_size != stored_size:
                raise WitnessConflict(new.origin, old_size, stored_size)

            # Step 3: consistency with what we cosigned before.
            if stored is not None:
                self._check_extends(stored, new, proof, log_key)
            elif proof:
                raise Rejected(Reason.BAD_PROOF, "a proof from size 0 must be empty")

            # Step 4: store, then cosign.
            if not self._storage.replace(new.origin, stored_note, new.to_bytes()):
                current = self.latest(new.origin)
                raise WitnessConflict(new.origin, old_size, 0 if current is None else current.size)
        cosignature = self._signer.cosign(new.text(), now)
        logger.info("witness %s cosigned %s@%d", self.name, new.origin, new.size)
        return cosignature

    def _check_extends(
        self, stored: Checkpoint, new: Checkpoint, proof: Sequence[bytes], log_key: NoteVerifier
    ) -> None:
        if new.size == stored.size and new.root_hash != stored.root_hash:
            fork = LogForkProof(log_key, stored, new, None, ())
            self.forks.append(fork)
            logger.warning(
                "witness %s saw two checkpoints of %s at size %d with different roots",
                self.name, new.origin, new.size,
            )
        if new.size < stored.size:
            raise Rejected(
                Reason.INCONSISTENT_LOG,
                f"checkpoint size {new.size} is older than size {stored.size} already cosigned",
                expected=f"size >= {stored.size}",
                actual=str(new.size),
            )
        check_consistent(stored, new, proof)


def request_cosignature(
    log_checkpoint: Checkpoint,
    witness: Cosigner,
    *,
    consistency_proof: ConsistencyProofSource,
    now: int,
    known_size: int = 0,
) -> NoteSignature:
    """Ask ``witness`` to cosign, retrying once with the size it reports on a conflict."""
    old_size = known_size
    for _attempt in range(2):
        proof = consistency_proof(old_size, log_checkpoint.size) if old_size else []
        try:
            return witness.add_checkpoint(
                old_size=old_size, proof=proof, checkpoint=log_checkpoint.to_bytes(), now=now
            )
        except WitnessConflict as conflict:
            if conflict.size > log_checkpoint.size:
                raise Rejected(
                    Reason.INCONSISTENT_LOG,
                    f"witness {witness.name} has cosigned size {conflict.size}, newer than this "
                    f"log's checkpoint size {log_checkpoint.size}",
                ) from None
            logger.debug("witness %s is at size %d; retrying", witness.name, conflict.size)
            old_size = conflict.size
    raise Rejected(
        Reason.WITNESS_QUORUM_NOT_MET,
        f"witness {witness.name} changed its state twice while cosigning; try again",
    )


def collect_cosignatures(
    log_checkpoint: Checkpoint,
    witnesses: Sequence[Cosigner],
    *,
    consistency_proof: ConsistencyProofSource,
    now: int,
) -> tuple[list[NoteSignature], dict[str, str]]:
    """Ask every witness; return the cosignatures and, per witness that rejected, why."""
    cosignatures: list[NoteSignature] = []
    failures: dict[str, str] = {}
    for witness in witnesses:
        try:
            cosignatures.append(
                request_cosignature(
                    log_checkpoint, witness, consistency_proof=consistency_proof, now=now
                )
            )
        except Rejected as exc:
            logger.warning("witness %s rejected %s@%d: %s", witness.name,
                           log_checkpoint.origin, log_checkpoint.size, exc)
            failures[witness.name] = str(exc)
    return cosignatures, failures
