"""Checkpoint gossip: devices and verifiers compare the checkpoints they have seen of one log.

A log that shows one device tree A and another device tree B cannot make both look consistent.
Exchanging checkpoints reveals it:

* two checkpoints of one size with different roots are a :class:`LogForkProof` at once;
* for two sizes ``m < n`` the pool requests from the log (any :class:`ProofSource`, local or remote) for
  the root of its first ``m`` entries in the larger tree and a consistency proof to ``n``. A proof
  that verifies against a prefix root different from the smaller checkpoint's root is a
  :class:`LogForkProof`; a log that cannot produce a valid proof is reported, unproven.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from flexheg.errors import Rejected
from flexheg.translog.equivocation import LogForkProof
from flexheg.wire.checkpoint import Checkpoint, NoteVerifier, check_consistent, verify_checkpoint
from flexheg.wire.merkle import verify_consistency

logger = logging.getLogger(__name__)


class ProofSource(Protocol):
    """Source of past roots and consistency proofs, from the tree that a log serves."""

    def root_hash(self, size: int | None = None) -> bytes: ...

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]: ...


@dataclass(frozen=True)
class AuditResult:
    """Outcome of checking the gossiped checkpoints: proven forks and unresolved pairs."""

    forks: tuple[LogForkProof, ...]
    unresolved: tuple[str, ...]


class CheckpointPool:
    """The checkpoints of one log that a party has seen itself or heard from peers."""

    def __init__(self, log_key: NoteVerifier) -> None:
        self._log_key = log_key
        self._by_size: dict[int, Checkpoint] = {}
        self._consistent: set[tuple[int, int]] = set()
        self.forks: list[LogForkProof] = []

    def checkpoints(self) -> list[Checkpoint]:
        return [self._by_size[size] for size in sorted(self._by_size)]

    def observe(self, checkpoint: Checkpoint) -> LogForkProof | None:
        """Add a checkpoint signed by the log; return a fork proof if it conflicts in size."""
        verify_checkpoint(checkpoint, self._log_key)
        known = self._by_size.get(checkpoint.size)
        if known is None:
            self._by_size[checkpoint.size] = checkpoint
            return None
        if known.root_hash == checkpoint.root_hash:
            return None
        fork = LogForkProof(self._log_key, known, checkpoint, None, ())
        self.forks.append(fork)
        logger.warning("log %s has two roots at size %d", self._log_key.name, checkpoint.size)
        return fork

    def exchange(self, peer: CheckpointPool) -> list[LogForkProof]:
        """Share checkpoints both ways with ``peer``; return the fork proofs found."""
        forks = [f for c in peer.checkpoints() if (f := self.observe(c)) is not None]
        for checkpoint in self.checkpoints():
            peer.observe(checkpoint)
        return forks

    def audit(self, sources: Iterable[ProofSource]) -> AuditResult:
        """Check every neighbouring pair of sizes against the logs in ``sources``."""
        sources = list(sources)
        checkpoints = self.checkpoints()
        forks: list[LogForkProof] = []
        unresolved: list[str] = []
        for old, new in itertools.pairwise(checkpoints):
            if (old.size, new.size) in self._consistent:
                continue
            outcome = self._check_pair(old, new, sources)
            if isinstance(outcome, LogForkProof):
                forks.append(outcome)
                self.forks.append(outcome)
            elif outcome is None:
                self._consistent.add((old.size, new.size))
            else:
                unresolved.append(outcome)
        return AuditResult(tuple(forks), tuple(unresolved))

    def _check_pair(
        self, old: Checkpoint, new: Checkpoint, sources: list[ProofSource]
    ) -> LogForkProof | str | None:
        for source in sources:
            try:
                prefix_root = source.root_hash(old.size)
                proof = source.consistency_proof(old.size, new.size)
                verify_consistency(old_size=old.size, new_size=new.size, old_root=prefix_root,
                                   new_root=new.root_hash, proof=proof)
            except (Rejected, LookupError, ValueError) as exc:
                logger.debug("source gave no valid proof %d -> %d: %s", old.size, new.size, exc)
                continue
            if prefix_root == old.root_hash:
                check_consistent(old, new, proof)
                return None
            return LogForkProof(self._log_key, old, new, prefix_root, tuple(proof))
        return f"no source proved size {old.size} consistent with size {new.size}"
