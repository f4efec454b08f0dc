"""Time the prover on a 50-rule ruleset against the evaluator on a sample of workloads.

Run: ``python bench/bench_prover.py [--repeat 5] [--workloads 20000]``. The prover proves the
ratchet (old to a relaxed new ruleset), refutes a ratchet (to a tightened one, counterexample
re-checked included) and proves baseline rights. The baseline is ``Ruleset.decide`` on random
workloads in the same process, and the ratio gives how many evaluator decisions one proof costs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from flexheg.rules import FACTS, WORKLOAD_KINDS, FactType, Ruleset, parse_rule
from flexheg.rules.prover import Verdict, prove_baseline_rights, prove_ratchet

BASELINE = "workload.cluster_size <= 8 && workload.interconnect_gbps <= 100"


def build_ruleset(scale: int) -> Ruleset:
    """Build a 50-rule ruleset of 16 deny and 34 allow rules, with every cap multiplied by ``scale``."""
    specs: list[tuple[str, str]] = [("deny", "!device.licensed && workload.cluster_size > 8")]
    for i in range(10):
        specs.append(("deny", f'location.region == "r{i}" && workload.cluster_size > {(1000 + i) * scale}'))
    for i in range(5):
        hazard = f'"hazard-{i}" in workload.evals_passed && workload.kind == "fine-tuning"'
        specs.append(("deny", f"has(workload.evals_passed) && {hazard} && workload.cluster_size > 8"))
    specs.append(("allow", BASELINE))
    for i in range(15):
        cap = f"{(i + 1) * scale}e23"
        specs.append(
            ("allow", f'workload.kind == "training" && run.flop_total <= {cap} && location.region == "r{i}"')
        )
    for i in range(10):
        specs.append(
            (
                "allow",
                f'workload.kind == "inference" && workload.interconnect_gbps * {i + 1} <= {1000 * scale}',
            )
        )
    for i in range(8):
        specs.append(
            (
                "allow",
                f'"safety-{i}" in workload.evals_passed && run.flop_total - workload.flop <= {scale}e24',
            )
        )
    rules = [
        parse_rule({"id": f"r{i}", "effect": effect, "when": when, "reason": when}, caps={}, where="bench")
        for i, (effect, when) in enumerate(specs)
    ]
    assert len(rules) == 50
    return Ruleset(rules)


def random_workload(rng: random.Random) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "workload.kind": rng.choice(WORKLOAD_KINDS),
        "workload.run_id": f"run-{rng.randrange(100)}",
        "workload.flop": rng.randrange(10**26),
        "workload.cluster_size": rng.choice((1, 8, 64, 1024, 4096)),
        "workload.interconnect_gbps": rng.choice((50, 100, 400, 1600)),
        "workload.evals_passed": tuple(f"safety-{i}" for i in range(8) if rng.random() < 0.2),
        "run.flop_total": rng.randrange(10**26),
        "device.licensed": rng.random() < 0.9,
        "location.region": f"r{rng.randrange(12)}",
    }
    assert set(facts) <= set(FACTS)
    assert all(
        FACTS[name].type is not FactType.STRING_SET or isinstance(v, tuple) for name, v in facts.items()
    )
    return facts


def median_seconds(action: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per measurement; the output is the median"
    )
    parser.add_argument("--workloads", type=int, default=20_000, help="workloads in the evaluator sample")
    args = parser.parse_args()

    old, relaxed, tightened = build_ruleset(1), build_ruleset(2), build_ruleset(1)
    tightened = Ruleset(tightened.rules[:-1])
    assert prove_ratchet(old, relaxed).verdict is Verdict.PROVED
    assert prove_ratchet(old, tightened).verdict is Verdict.REFUTED
    assert prove_baseline_rights(relaxed, BASELINE).verdict is Verdict.PROVED

    rng = random.Random(7)
    workloads = [random_workload(rng) for _ in range(args.workloads)]

    def evaluate_sample() -> None:
        for facts in workloads:
            relaxed.decide(facts)

    per_decision = median_seconds(evaluate_sample, args.repeat) / len(workloads)
    print(f"evaluator (Ruleset.decide, 50 rules): {per_decision * 1e6:.2f} us per workload")
    measurements = {
        "ratchet proved (relaxed caps)": lambda: prove_ratchet(old, relaxed),
        "ratchet refuted (rule removed)": lambda: prove_ratchet(old, tightened),
        "baseline rights proved": lambda: prove_baseline_rights(relaxed, BASELINE),
    }
    for label, action in measurements.items():
        seconds = median_seconds(action, args.repeat)
        print(f"{label}: {seconds * 1000:.1f} ms = {seconds / per_decision:,.0f} evaluator decisions")


if __name__ == "__main__":
    main()
