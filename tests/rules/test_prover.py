"""Unit tests of the prover: semantics corner cases, unprovable results and succession checks."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import z3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexheg.errors import InputError, Reason, Rejected
from flexheg.rules import (
    FACTS,
    Arith,
    BoolOp,
    Compare,
    Effect,
    Expr,
    Fact,
    FactType,
    Has,
    In,
    Literal,
    Neg,
    Not,
    Rule,
    Ruleset,
    SuccessionKind,
    SuccessionRule,
    Value,
    parse_rule,
    parse_workload,
)
from flexheg.rules._smt import DESCRIPTOR_PREFIX, DESCRIPTOR_REQUIRED, Encoding
from flexheg.rules.prover import (
    Verdict,
    check_succession,
    counterexample_from_facts,
    prove_baseline_rights,
    prove_equivalent,
    prove_ratchet,
    verify_succession,
)

from .strategies import random_facts, rulesets


def ruleset(*rules: tuple[str, str], caps: dict[str, int] | None = None, succession: Any = ()) -> Ruleset:
    parsed = [
        parse_rule(
            {"id": f"r{i}", "effect": effect, "when": when, "reason": f"rule {i}"}, caps=caps or {}, where="t"
        )
        for i, (effect, when) in enumerate(rules)
    ]
    return Ruleset(parsed, caps, succession)


ALLOW_ALL = ruleset(("allow", "true"))


def test_descriptor_required_facts_match_parse_workload() -> None:
    full = {"kind": "training", "run_id": "r", "flop": 1, "cluster_size": 1}
    assert set(parse_workload(full, what="w")) == set(DESCRIPTOR_REQUIRED)
    for name in DESCRIPTOR_REQUIRED:
        partial = {k: v for k, v in full.items() if DESCRIPTOR_PREFIX + k != name}
        with pytest.raises(InputError, match="missing required field"):
            parse_workload(partial, what="w")


def test_every_workload_fact_is_a_descriptor_field() -> None:
    descriptor: dict[str, Any] = {"kind": "training", "run_id": "r", "flop": 1, "cluster_size": 1}
    descriptor |= {"interconnect_gbps": 5, "model_digest": "m", "evals_passed": ["e"]}
    facts = parse_workload(descriptor, what="w")
    assert set(facts) == {name for name in FACTS if name.startswith(DESCRIPTOR_PREFIX)}


def test_missing_fact_in_deny_rule_denies() -> None:
    old = ALLOW_ALL
    new = ruleset(("deny", "device.licensed == false"), ("allow", "true"))
    result = prove_ratchet(old, new)
    assert result.verdict is Verdict.REFUTED
    assert result.counterexample is not None
    facts = result.counterexample.all_facts()
    assert facts.get("device.licensed", False) is False


def test_missing_fact_counterexample_when_only_absence_violates() -> None:
    new = ruleset(("deny", "device.licensed && !device.licensed"), ("allow", "true"))
    result = prove_ratchet(ALLOW_ALL, new)
    assert result.verdict is Verdict.REFUTED
    assert result.counterexample is not None
    assert "device.licensed" in result.counterexample.absent
    assert "device.licensed" not in result.counterexample.facts


def test_false_and_error_is_false() -> None:
    new = ruleset(("deny", "false && device.licensed"), ("allow", "true"))
    assert prove_equivalent(ALLOW_ALL, new).verdict is Verdict.PROVED


def test_true_or_error_is_true() -> None:
    new = ruleset(("allow", "true || location.proof_age_s > 5"))
    assert prove_equivalent(ALLOW_ALL, new).verdict is Verdict.PROVED


def test_required_facts_are_never_missing() -> None:
    new = ruleset(("allow", "has(workload.flop) && has(workload.kind) && workload.cluster_size >= 1"))
    assert prove_equivalent(ALLOW_ALL, new).verdict is Verdict.PROVED


def test_distinct_free_strings_can_be_equal() -> None:
    new = ruleset(
        ("deny", "workload.run_id == device.id && workload.model_digest == location.region"),
        ("allow", "true"),
    )
    result = prove_ratchet(ALLOW_ALL, new)
    assert result.verdict is Verdict.REFUTED
    assert result.counterexample is not None
    facts = result.counterexample.all_facts()
    assert facts["workload.run_id"] == facts["device.id"]
    assert facts["workload.model_digest"] == facts["location.region"]


def test_four_free_strings_can_all_differ() -> None:
    condition = " && ".join(
        f"{a} != {b}"
        for a, b in [
            ("workload.run_id", "device.id"),
            ("workload.run_id", "workload.model_digest"),
            ("workload.run_id", "location.region"),
            ("device.id", "workload.model_digest"),
            ("device.id", "location.region"),
            ("workload.model_digest", "location.region"),
        ]
    )
    result = prove_baseline_rights(ruleset(("allow", "false")), condition)
    assert result.verdict is Verdict.REFUTED
    assert result.counterexample is not None
    facts = result.counterexample.all_facts()
    values = {
        facts[name] for name in ("workload.run_id", "device.id", "workload.model_digest", "location.region")
    }
    assert len(values) == 4


def test_descriptor_strings_are_never_empty() -> None:
    allow_empty_run = ruleset(("deny", 'workload.run_id == ""'), ("allow", "true"))
    assert prove_equivalent(ALLOW_ALL, allow_empty_run).verdict is Verdict.PROVED
    empty_region = ruleset(("deny", 'location.region == ""'), ("allow", "true"))
    assert prove_equivalent(ALLOW_ALL, empty_region).verdict is Verdict.REFUTED


def test_set_membership_of_fact_value() -> None:
    new = ruleset(("deny", "workload.run_id in workload.evals_passed"), ("allow", "true"))
    result = prove_ratchet(ALLOW_ALL, new)
    assert result.verdict is Verdict.REFUTED
    assert result.counterexample is not None
    facts = result.counterexample.all_facts()
    evals = facts["workload.evals_passed"]
    assert isinstance(evals, tuple)
    assert facts["workload.run_id"] in evals


def test_counterexample_large_flop_is_text() -> None:
    old = ruleset(("allow", "workload.flop > 1e30"))
    result = prove_ratchet(old, ruleset())
    assert result.counterexample is not None
    flop = result.counterexample.workload["flop"]
    assert isinstance(flop, str)
    assert int(flop) > 10**30
    assert parse_workload(result.counterexample.workload, what="w")["workload.flop"] == int(flop)


def test_rule_outside_fragment_is_unprovable() -> None:
    product = Arith("*", Fact("workload.flop", FactType.INT), Fact("workload.cluster_size", FactType.INT))
    expr = Compare(">", product, Literal(10, FactType.INT))
    nonlinear = Ruleset(
        [Rule("nonlinear", Effect.ALLOW, "workload.flop * workload.cluster_size > 10", "r", expr)]
    )
    result = prove_ratchet(ALLOW_ALL, nonlinear)
    assert result.verdict is Verdict.UNPROVABLE
    assert "outside the provable fragment" in result.detail


INT_FACT = Fact("workload.flop", FactType.INT)
STRING_FACT = Fact("device.id", FactType.STRING)
BOOL_FACT = Fact("device.licensed", FactType.BOOL)
SEVEN = Literal(7, FactType.INT)
TEXT = Literal("a", FactType.STRING)


@pytest.mark.parametrize(
    "expr",
    [
        Compare("==", INT_FACT, TEXT),
        Compare("<", STRING_FACT, TEXT),
        Compare("<", BOOL_FACT, Literal(True, FactType.BOOL)),
        Compare("=~", INT_FACT, SEVEN),
        In(SEVEN, Literal(("a",), FactType.STRING_SET)),
        In(TEXT, STRING_FACT),
        Fact("device.licensed", FactType.INT),
        Compare("==", Fact("device.serial", FactType.INT), SEVEN),
        Has("device.serial"),
        Not(INT_FACT),
        BoolOp("^", BOOL_FACT, BOOL_FACT),
        Compare(">", Neg(TEXT), SEVEN),
        Compare(">", Arith("/", INT_FACT, SEVEN), SEVEN),
        Compare("==", Literal(True, FactType.INT), SEVEN),
        INT_FACT,
    ],
    ids=repr,
)
def test_hand_built_tree_outside_fragment(expr: Expr) -> None:
    rule = Rule("odd", Effect.ALLOW, "hand-built", "r", expr)
    result = prove_ratchet(ALLOW_ALL, Ruleset([rule]))
    assert result.verdict is Verdict.UNPROVABLE


def test_unknown_effect_is_unprovable() -> None:
    rule = Rule("odd", "allow", "true", "r", Literal(True, FactType.BOOL))  # type: ignore[arg-type]
    result = prove_equivalent(ALLOW_ALL, Ruleset([rule]))
    assert result.verdict is Verdict.UNPROVABLE


def test_solver_unknown_is_unprovable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(z3.Solver, "check", lambda self, *args: z3.unknown)
    monkeypatch.setattr(z3.Solver, "reason_unknown", lambda self: "timeout")
    result = prove_ratchet(ALLOW_ALL, ruleset())
    assert result.verdict is Verdict.UNPROVABLE
    assert "timeout" in result.detail


def test_unconfirmed_counterexample_is_unprovable(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Encoding.facts_from_model

    def wrong(self: Encoding, model: Any) -> dict[str, Any]:
        facts = original(self, model)
        facts["workload.flop"] = 5
        return facts

    monkeypatch.setattr(Encoding, "facts_from_model", wrong)
    result = prove_ratchet(ALLOW_ALL, ruleset(("deny", "workload.flop < 3"), ("allow", "true")))
    assert result.verdict is Verdict.UNPROVABLE
    assert result.counterexample is None


def test_invalid_counterexample_is_unprovable(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Encoding.facts_from_model

    def empty_run_id(self: Encoding, model: Any) -> dict[str, Any]:
        return {**original(self, model), "workload.run_id": ""}

    monkeypatch.setattr(Encoding, "facts_from_model", empty_run_id)
    result = prove_ratchet(ALLOW_ALL, ruleset(("deny", "workload.flop < 3"), ("allow", "true")))
    assert result.verdict is Verdict.UNPROVABLE
    assert result.counterexample is None


def test_baseline_rights_rejects_bad_condition() -> None:
    with pytest.raises(InputError):
        prove_baseline_rights(ALLOW_ALL, "workload.flop <")


def test_counterexample_round_trips_through_descriptor() -> None:
    facts: dict[str, Value] = {
        "workload.kind": "training",
        "workload.run_id": "r",
        "workload.flop": 10**25,
        "workload.cluster_size": 4,
        "workload.evals_passed": ("a",),
        "device.licensed": True,
    }
    counterexample = counterexample_from_facts(facts, {})
    assert counterexample.all_facts() == facts
    assert "device.licensed" in counterexample.facts
    assert "location.region" in counterexample.absent


CAPPED = ruleset(("allow", "workload.flop <= caps.limit"), caps={"limit": 100})


@pytest.mark.parametrize(
    ("rule", "new", "lifetime", "verdict"),
    [
        (SuccessionRule(SuccessionKind.MAX_LIFETIME, seconds=100), CAPPED, 100, Verdict.PROVED),
        (SuccessionRule(SuccessionKind.MAX_LIFETIME, seconds=100), CAPPED, 101, Verdict.REFUTED),
        (SuccessionRule(SuccessionKind.MAX_LIFETIME, seconds=100), CAPPED, None, Verdict.UNPROVABLE),
        (SuccessionRule(SuccessionKind.KEEP_RULE, rule="r0"), CAPPED, 1, Verdict.PROVED),
        (SuccessionRule(SuccessionKind.KEEP_RULE, rule="r0"), ALLOW_ALL, 1, Verdict.REFUTED),
        (SuccessionRule(SuccessionKind.KEEP_RULE, rule="r0"), ruleset(), 1, Verdict.REFUTED),
        (SuccessionRule(SuccessionKind.CAP_NOT_LOWER, cap="limit"), CAPPED, 1, Verdict.PROVED),
        (SuccessionRule(SuccessionKind.CAP_NOT_LOWER, cap="limit"), ALLOW_ALL, 1, Verdict.REFUTED),
        (SuccessionRule(SuccessionKind.CAP_NOT_HIGHER, cap="limit"), CAPPED, 1, Verdict.PROVED),
        (SuccessionRule(SuccessionKind.RATCHET), ALLOW_ALL, 1, Verdict.PROVED),
        (SuccessionRule(SuccessionKind.RATCHET), ruleset(), 1, Verdict.REFUTED),
        (
            SuccessionRule(SuccessionKind.BASELINE_RIGHTS, when="workload.flop < 10"),
            CAPPED,
            1,
            Verdict.PROVED,
        ),
        (
            SuccessionRule(SuccessionKind.BASELINE_RIGHTS, when="workload.flop < 1000"),
            CAPPED,
            1,
            Verdict.REFUTED,
        ),
    ],
)
def test_succession_kinds(rule: SuccessionRule, new: Ruleset, lifetime: int | None, verdict: Verdict) -> None:
    old = ruleset(("allow", "workload.flop <= caps.limit"), caps={"limit": 100}, succession=[rule])
    report = check_succession(old, new, new_lifetime=lifetime)
    assert [check.verdict for check in report.checks] == [verdict]
    assert report.ok == (verdict is Verdict.PROVED)
    assert report.to_dict()["checks"][0]["kind"] == rule.kind.value


def test_keep_rule_notes_changed_cap() -> None:
    rule = SuccessionRule(SuccessionKind.KEEP_RULE, rule="r0")
    old = ruleset(("allow", "workload.flop <= caps.limit"), caps={"limit": 100}, succession=[rule])
    new = ruleset(("allow", "workload.flop <= caps.limit"), caps={"limit": 200})
    (check,) = check_succession(old, new, new_lifetime=1).checks
    assert check.verdict is Verdict.PROVED
    assert "caps.limit (100 to 200)" in check.detail


def test_dropped_succession_rules_are_listed() -> None:
    rule = SuccessionRule(SuccessionKind.RATCHET)
    old = ruleset(("allow", "true"), succession=[rule])
    report = check_succession(old, ALLOW_ALL, new_lifetime=1)
    assert report.dropped == (rule,)
    kept = check_succession(old, old, new_lifetime=1)
    assert kept.dropped == ()


def test_verify_succession_raises_on_violation() -> None:
    old = ruleset(("allow", "true"), succession=[SuccessionRule(SuccessionKind.RATCHET)])
    with pytest.raises(Rejected) as caught:
        verify_succession(old, ruleset(), new_lifetime=1)
    assert caught.value.reason is Reason.SUCCESSION_RULE_VIOLATED
    assert "ratchet" in caught.value.message
    assert verify_succession(old, ALLOW_ALL, new_lifetime=1).ok


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    old=rulesets(max_rules=4, depth=2),
    new=rulesets(max_rules=4, depth=2),
    sample_seed=st.integers(0, 2**32 - 1),
)
def test_ratchet_verdict_agrees_with_sampling(old: Ruleset, new: Ruleset, sample_seed: int) -> None:
    result = prove_ratchet(old, new)
    assert result.verdict is not Verdict.UNPROVABLE
    if result.verdict is Verdict.REFUTED:
        assert result.counterexample is not None
        facts = result.counterexample.all_facts()
        assert old.decide(facts).allowed
        assert not new.decide(facts).allowed
        return
    rng = random.Random(sample_seed)
    for _ in range(50):
        facts = random_facts(rng, old, presence=0.8)
        if not all(name in facts for name in DESCRIPTOR_REQUIRED) or facts.get("workload.run_id") == "":
            continue
        if facts.get("workload.model_digest") == "":
            continue
        if old.decide(facts).allowed:
            assert new.decide(facts).allowed, facts


def test_concurrent_proofs_agree() -> None:
    relaxed = ruleset(("allow", "workload.flop <= 200"))
    tightened = ruleset(("allow", "workload.flop <= 50"))
    capped = ruleset(("allow", "workload.flop <= 100"))
    pairs = [(capped, relaxed, Verdict.PROVED), (capped, tightened, Verdict.REFUTED)] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(lambda pair: prove_ratchet(pair[0], pair[1]).verdict, pairs))
    assert verdicts == [expected for _, _, expected in pairs]
