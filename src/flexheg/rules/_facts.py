"""The workload facts that rules may read, with their declared types and bounds.

The bounds are part of the language: the evaluator never sees a value outside them (workload
descriptors are validated on entry), and the prover uses them as the domain of each variable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FactType(enum.Enum):
    INT = "int"
    BOOL = "bool"
    STRING = "string"
    STRING_SET = "string-set"


MAX_FLOP = 10**32
"""Upper bound on any FLOP count (far above any plausible run, small enough to stay exact)."""


@dataclass(frozen=True)
class FactSpec:
    """One fact: its name, type, bounds for integers, allowed values for enumerations."""

    name: str
    type: FactType
    description: str
    minimum: int = 0
    maximum: int = 0
    choices: tuple[str, ...] = ()


WORKLOAD_KINDS = ("training", "fine-tuning", "inference", "evaluation", "other")

FACTS: dict[str, FactSpec] = {
    spec.name: spec
    for spec in (
        FactSpec("workload.kind", FactType.STRING, "kind of workload", choices=WORKLOAD_KINDS),
        FactSpec("workload.flop", FactType.INT, "FLOP this request declares", 0, MAX_FLOP),
        FactSpec("workload.cluster_size", FactType.INT, "accelerators working together", 1, 10**8),
        FactSpec(
            "workload.interconnect_gbps",
            FactType.INT,
            "interconnect bandwidth per accelerator, Gbit/s",
            0,
            10**8,
        ),
        FactSpec("workload.model_digest", FactType.STRING, "sha256 digest of the model"),
        FactSpec("workload.run_id", FactType.STRING, "run the request belongs to"),
        FactSpec("workload.evals_passed", FactType.STRING_SET, "evaluations the model passed"),
        FactSpec(
            "run.flop_total",
            FactType.INT,
            "metered FLOP of the run so far plus this request",
            0,
            MAX_FLOP,
        ),
        FactSpec("device.id", FactType.STRING, "device identifier"),
        FactSpec("device.licensed", FactType.BOOL, "a valid operating license is installed"),
        FactSpec("location.verified", FactType.BOOL, "a fresh location proof exists"),
        FactSpec("location.region", FactType.STRING, "named region the device is proven inside"),
        FactSpec("location.proof_age_s", FactType.INT, "age of the newest location proof, s", 0, 2**62),
    )
}
