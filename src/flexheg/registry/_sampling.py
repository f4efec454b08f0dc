"""Deterministic, publicly re-checkable random selection from a public seed.

Anyone who knows the seed (for example a transparency-log checkpoint hash published after the
population was fixed) and the population can recompute every draw. All arithmetic is on integers
and exact fractions, so two implementations cannot disagree through rounding.

Algorithm ``flexheg-stratified-sha256-v1``:

1. Strata are the pairs (entity kind, risk weight). Stratum s has N_s entities and weight w_s.
2. Allocation: the sample size n (capped at the population) is split in proportion to
   N_s * w_s. Each round gives every stratum that still has room the floor of its exact share of
   what is left, capped at N_s. When a round gives nothing, the remaining units go one each to the
   strata with the largest fractional share, ties broken by the stratum name in byte order.
3. Within a stratum, every entity gets the key SHA-256(canonical JSON of
   ``["flexheg-stratified-sha256-v1", seed, kind, risk_weight, entity_id]``); the entities with the
   k_s smallest keys (compared as bytes) are selected.
4. The selection digest is the ``sha256:`` digest of the canonical JSON of
   ``{"algorithm", "seed", "sample_size", "strata": {name: [N_s, k_s]}, "selected": [[stratum,
   id], ...]}`` with ``selected`` sorted.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from flexheg.errors import InputError
from flexheg.wire import encode, sha256_digest

ALGORITHM = "flexheg-stratified-sha256-v1"


@dataclass(frozen=True, order=True)
class Stratum:
    kind: str
    risk_weight: int

    @property
    def name(self) -> str:
        return f"{self.kind}/w{self.risk_weight}"


def draw_key(seed: str, purpose: str, *parts: str | int) -> bytes:
    """Return the SHA-256 draw key of one item: the hash of the canonical JSON of its parts."""
    return hashlib.sha256(encode([purpose, seed, *parts])).digest()


def allocate(counts: Mapping[Stratum, int], sample_size: int) -> dict[Stratum, int]:
    """Split ``sample_size`` over the strata in proportion to count times risk weight (step 2)."""
    if sample_size < 0:
        raise InputError(f"sample size {sample_size} must not be negative")
    allocation = dict.fromkeys(counts, 0)
    remaining = min(sample_size, sum(counts.values()))
    while remaining > 0:
        open_strata = sorted(s for s in counts if allocation[s] < counts[s])
        total = sum(counts[s] * s.risk_weight for s in open_strata)
        shares = {s: Fraction(remaining * counts[s] * s.risk_weight, total) for s in open_strata}
        given = 0
        for stratum in open_strata:
            add = min(int(shares[stratum]), counts[stratum] - allocation[stratum])
            allocation[stratum] += add
            given += add
        if given == 0:
            by_remainder = sorted(
                open_strata, key=lambda s: (-(shares[s] - int(shares[s])), s.name.encode())
            )
            for stratum in by_remainder:
                if given == remaining:
                    break
                allocation[stratum] += 1
                given += 1
        remaining -= given
    return allocation


def select_in_stratum(seed: str, stratum: Stratum, ids: Iterable[str], count: int) -> list[str]:
    """Return the ``count`` ids with the smallest draw keys (step 3), in key order."""
    keyed = ((draw_key(seed, ALGORITHM, stratum.kind, stratum.risk_weight, i), i) for i in ids)
    return [entity_id for _, entity_id in heapq.nsmallest(count, keyed)]


def selection_digest(
    seed: str,
    sample_size: int,
    counts: Mapping[Stratum, int],
    allocation: Mapping[Stratum, int],
    selected: Iterable[tuple[Stratum, str]],
) -> str:
    """Return the digest that commits to a whole draw (step 4)."""
    document = {
        "algorithm": ALGORITHM,
        "seed": seed,
        "sample_size": sample_size,
        "strata": {s.name: [counts[s], allocation[s]] for s in counts},
        "selected": sorted([s.name, entity_id] for s, entity_id in selected),
    }
    return sha256_digest(encode(document))


def select_sample(
    seed: str, population: Iterable[tuple[str, str, int]], sample_size: int
) -> tuple[list[tuple[Stratum, str]], str]:
    """Draw a stratified sample from (entity id, kind, risk weight) triples.

    Returns the selected (stratum, id) pairs and the selection digest. This is the reference
    that a third party runs to re-check a round the registry drew.
    """
    members: dict[Stratum, list[str]] = {}
    for entity_id, kind, weight in population:
        members.setdefault(Stratum(kind, weight), []).append(entity_id)
    counts = {stratum: len(ids) for stratum, ids in members.items()}
    allocation = allocate(counts, sample_size)
    selected = [
        (stratum, entity_id)
        for stratum in sorted(members)
        for entity_id in select_in_stratum(seed, stratum, members[stratum], allocation[stratum])
    ]
    return selected, selection_digest(seed, sample_size, counts, allocation, selected)


def bernoulli_selected(key: bytes, rate: Fraction) -> bool:
    """Return True with probability ``rate`` for a uniformly random 256-bit ``key``, exactly."""
    return int.from_bytes(key, "big") * rate.denominator < rate.numerator * (1 << 256)
