"""Differential tests: the SMT model against the evaluator, and the fast path against the closures.

Each random ruleset is checked on a batch of random workloads, so that the SMT translation is
built once per ruleset. Facts are present at random, which exercises the error semantics.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from flexheg.rules import Ruleset, facts_in
from flexheg.rules._smt import Encoding, ruleset_literals

from .strategies import random_facts, rulesets

WORKLOADS_PER_RULESET = 25
CASES_PER_PART = 5_000
"""Two parts of 5,000 cases each: at least 10,000 random cases, split over two workers."""


def rule_position(ruleset: Ruleset, rule_id: str | None) -> int:
    if rule_id is None:
        return -1
    return [rule.id for rule in ruleset.rules].index(rule_id)


@pytest.mark.parametrize("part", [1, 2])
def test_smt_model_matches_evaluator(part: int) -> None:
    cases = 0

    @seed(part)
    @settings(
        max_examples=CASES_PER_PART // WORKLOADS_PER_RULESET + 10,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(ruleset=rulesets(), workload_seed=st.integers(0, 2**32 - 1))
    def check(ruleset: Ruleset, workload_seed: int) -> None:
        nonlocal cases
        rng = random.Random(workload_seed)
        encoding = Encoding(ruleset_literals(ruleset), required=())
        allowed = encoding.allowed(ruleset)
        decided_by = encoding.decided_by(ruleset)
        read = sorted(set().union(*(facts_in(rule.expr) for rule in ruleset.rules)))
        for _ in range(WORKLOADS_PER_RULESET):
            facts = random_facts(rng, ruleset, presence=rng.choice((0.5, 0.8, 1.0)))
            decision = ruleset.decide(facts)
            assert encoding.evaluate(allowed, facts, read) == decision.allowed, facts
            assert encoding.evaluate(decided_by, facts, read) == rule_position(ruleset, decision.rule), facts
            cases += 1

    check()
    assert cases >= CASES_PER_PART


def test_fast_path_matches_closures() -> None:
    cases = 0

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ruleset=rulesets(max_rules=8, depth=4), workload_seed=st.integers(0, 2**32 - 1))
    def check(ruleset: Ruleset, workload_seed: int) -> None:
        nonlocal cases
        rng = random.Random(workload_seed)
        for _ in range(WORKLOADS_PER_RULESET):
            facts = random_facts(rng, ruleset, presence=1.0)
            assert ruleset.decide(facts) == ruleset.decide_slow(facts), facts
            cases += 1

    check()
    assert cases >= 10_000
