"""Throughput of the fleet simulation: the vectorised engine against the per-chip loop.

Runs one replication of 10 million chips over 5 years in monthly steps with the vectorised engine.
Then it runs the per-chip reference loop of the same model on a small fleet in the same process.
It prints both throughputs in chip-steps per second and their ratio.

Every defence layer runs in every step, but the detection probabilities are set to 0 so that
both runs cover the whole horizon (the slowest case).

    python bench/bench_simulation.py [--chips N] [--baseline-chips N] [--months N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flexheg.analysis._reference import simulate_reference
from flexheg.analysis._scenario import Attack, AttackKind, Defences, Fleet, Scenario
from flexheg.analysis.simulation import simulate


def _scenario(chips: int, datacenters: int, months: int) -> Scenario:
    scale = chips / 10_000_000
    count = max(1, round(10_000 * scale))
    return Scenario(
        fleet=Fleet(chips=chips, datacenters=datacenters, defector_share=0.5),
        attacks=(
            Attack(AttackKind.DIVERSION, count, ramp_months=12, spoof_fraction=1.0),
            Attack(AttackKind.TAMPERING, count, ramp_months=12),
            Attack(AttackKind.MISSING, max(1, count // 10), ramp_months=24),
            Attack(AttackKind.COMPROMISED_BATCH, count, start_month=6),
            Attack(AttackKind.STOCKPILE, count, relative_performance=0.3),
        ),
        defences=Defences(
            production_detect_probability=0.0,
            census_detect_probability=0.0,
            tamper_detect_probability=0.0,
            backdoor_detect_probability=0.0,
            loss_investigation_detect_probability=0.0,
            intelligence_monthly=0.0,
        ),
        months=months,
    )


def _time(engine: object, scenario: Scenario) -> float:
    rng = np.random.default_rng(np.random.SeedSequence(2025))
    start = time.perf_counter()
    result = engine(scenario, rng)  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    assert not result.detected, "the benchmark scenario must run to the horizon"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=10_000_000)
    parser.add_argument("--baseline-chips", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=60)
    args = parser.parse_args()

    big = _scenario(args.chips, 5_000, args.months)
    small = _scenario(args.baseline_chips, 100, args.months)
    _time(simulate, _scenario(100_000, 100, 12))  # Warm up imports and NumPy.

    fast = _time(simulate, big)
    slow = _time(simulate_reference, small)
    fast_rate = args.chips * big.steps / fast
    slow_rate = args.baseline_chips * small.steps / slow
    print(
        f"vectorised: {args.chips:,} chips x {big.steps} steps in {fast:.2f} s "
        f"= {fast_rate:,.0f} chip-steps/s"
    )
    print(
        f"per-chip loop: {args.baseline_chips:,} chips x {small.steps} steps in {slow:.2f} s "
        f"= {slow_rate:,.0f} chip-steps/s"
    )
    print(f"ratio: {fast_rate / slow_rate:,.0f}x")


if __name__ == "__main__":
    main()
