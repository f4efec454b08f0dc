"""The ruleset pair library: every property verdict as expected, every counterexample confirmed.

Each folder under ``pairs/`` contains ``old.toml`` and ``new.toml``; ``pairs/expected.toml`` lists
the expected verdicts. The counterexamples are re-checked here with the evaluator, independently
of the prover's own re-check.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from flexheg.rules import Ruleset, compile_expression, load_rules_file, parse_expression
from flexheg.rules.prover import (
    Counterexample,
    Verdict,
    check_succession,
    prove_baseline_rights,
    prove_equivalent,
    prove_ratchet,
)

PAIRS = Path(__file__).parent / "pairs"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads((PAIRS / "expected.toml").read_text(encoding="utf-8"))


def load_pair(name: str) -> tuple[Ruleset, Ruleset]:
    return load_rules_file(PAIRS / name / "old.toml"), load_rules_file(PAIRS / name / "new.toml")


def evaluator_facts(counterexample: Counterexample) -> dict[str, Any]:
    facts = counterexample.all_facts()
    for name in counterexample.absent:
        assert name not in facts, f"{name} is listed as absent but present"
    return facts


def test_library_size() -> None:
    assert len(EXPECTED) >= 30
    folders = {path.name for path in PAIRS.iterdir() if path.is_dir()}
    assert folders == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pair_ratchet_both_ways(name: str) -> None:
    old, new = load_pair(name)
    expected = EXPECTED[name]

    forward = prove_ratchet(old, new)
    assert forward.verdict == expected["ratchet"], forward.detail
    assert (forward.counterexample is None) == (forward.verdict is Verdict.PROVED)
    if forward.counterexample is not None:
        facts = evaluator_facts(forward.counterexample)
        assert old.decide(facts).allowed
        assert not new.decide(facts).allowed

    backward = prove_ratchet(new, old)
    assert backward.verdict == expected["reverse_ratchet"], backward.detail
    assert (backward.counterexample is None) == (backward.verdict is Verdict.PROVED)
    if backward.counterexample is not None:
        facts = evaluator_facts(backward.counterexample)
        assert new.decide(facts).allowed
        assert not old.decide(facts).allowed


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pair_equivalence(name: str) -> None:
    old, new = load_pair(name)
    result = prove_equivalent(old, new)
    assert result.verdict == EXPECTED[name]["equivalent"], result.detail
    assert (result.counterexample is None) == (result.verdict is Verdict.PROVED)
    if result.counterexample is not None:
        facts = evaluator_facts(result.counterexample)
        assert old.decide(facts).allowed != new.decide(facts).allowed
    expected_equivalent = EXPECTED[name]["ratchet"] == EXPECTED[name]["reverse_ratchet"] == "proved"
    assert (result.verdict is Verdict.PROVED) == expected_equivalent


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pair_succession(name: str) -> None:
    old, new = load_pair(name)
    expected = EXPECTED[name]
    report = check_succession(old, new, new_lifetime=expected.get("new_lifetime", 86400))
    assert [check.verdict.value for check in report.checks] == expected["succession"]
    assert report.ok == all(verdict == "proved" for verdict in expected["succession"])
    for check in report.checks:
        if check.kind.device_checked or check.verdict is not Verdict.REFUTED:
            assert check.counterexample is None
            continue
        assert check.counterexample is not None
        facts = evaluator_facts(check.counterexample)
        assert not new.decide(facts).allowed
        if check.kind.value == "ratchet":
            assert old.decide(facts).allowed
        else:
            assert compile_expression(parse_expression(check.rule.when))(facts) is True


@pytest.mark.parametrize("name", sorted(name for name in EXPECTED if EXPECTED[name].get("baseline")))
def test_pair_baseline_rights(name: str) -> None:
    _, new = load_pair(name)
    for entry in EXPECTED[name]["baseline"]:
        result = prove_baseline_rights(new, entry["when"])
        assert result.verdict == entry["verdict"], result.detail
        assert (result.counterexample is None) == (result.verdict is Verdict.PROVED)
        if result.counterexample is not None:
            facts = evaluator_facts(result.counterexample)
            assert compile_expression(parse_expression(entry["when"]))(facts) is True
            assert not new.decide(facts).allowed
