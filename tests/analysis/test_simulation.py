"""Fleet simulation: agreement with closed forms, with the reference loop, and its mechanics.

Closed-form checks allow 4 standard errors of the simulated proportion, so each check would fail
by chance with probability below 1e-4 (normal approximation). Seeds are fixed, so a run is
deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexheg.analysis._reference import simulate_reference
from flexheg.analysis._scenario import Attack, AttackKind, Defences, Fleet, Scenario
from flexheg.analysis.detection import (
    combine_layers,
    p_at_least_one_sampled,
    p_batch_caught,
    p_detected_within,
)
from flexheg.analysis.race import AgreementKind
from flexheg.analysis.simulation import Replication, run_replications, simulate, summarize
from flexheg.errors import InputError

Z = 4.0
# One defector data center out of ten, no failures, so closed forms apply exactly.
SMALL = Fleet(chips=2_000, datacenters=10, defector_share=0.1, annual_failure_rate=0.0)


def _within(results: list[Replication], months: float) -> float:
    hits = [r.detected and r.months_to_detection <= months + 1e-9 for r in results]
    return float(np.mean(hits))


def _assert_close(observed: float, expected: float, n: int) -> None:
    stderr = math.sqrt(max(expected * (1 - expected), 1e-12) / n)
    assert abs(observed - expected) <= Z * stderr + 1e-12, (observed, expected, stderr)


def _scenario(attack: Attack, defences: Defences, months: int = 12, **kwargs: object) -> Scenario:
    return Scenario(fleet=SMALL, attacks=(attack,), defences=defences, months=months, **kwargs)  # type: ignore[arg-type]


def test_production_sampling_matches_closed_form() -> None:
    defences = _defences(production_sampling_rate=0.001)
    scenario = _scenario(Attack(AttackKind.COMPROMISED_BATCH, 1000), defences, months=1)
    results = run_replications(scenario, 3000, seed=1)
    _assert_close(_within(results, 1), p_at_least_one_sampled(0.001, 1000), 3000)
    assert {r.layer for r in results if r.detected} == {"production"}


def test_imperfect_testing_matches_closed_form() -> None:
    defences = _defences(production_sampling_rate=0.002, production_detect_probability=0.5)
    scenario = _scenario(Attack(AttackKind.COMPROMISED_BATCH, 500), defences, months=1)
    results = run_replications(scenario, 2000, seed=2)
    _assert_close(_within(results, 1), p_batch_caught(0.002, 500, 0.5), 2000)


def _defences(**values: float) -> Defences:
    base = Defences.none().__dict__
    return Defences(**{**base, **values})


@pytest.mark.parametrize("months", [3, 6, 12])
def test_census_matches_closed_form(months: int) -> None:
    scenario = _scenario(Attack(AttackKind.DIVERSION, 50), _defences(inspection_monthly=0.1))
    results = run_replications(scenario, 2000, seed=3)
    _assert_close(_within(results, months), p_detected_within(0.1, months), 2000)


def test_weekly_steps_match_monthly_closed_form() -> None:
    scenario = _scenario(
        Attack(AttackKind.DIVERSION, 50), _defences(inspection_monthly=0.1), steps_per_year=52
    )
    results = run_replications(scenario, 2000, seed=4)
    _assert_close(_within(results, 12), p_detected_within(0.1, 12), 2000)


def test_tampering_inspection_matches_closed_form() -> None:
    defences = _defences(inspection_monthly=0.2, inspection_chip_fraction=0.1, tamper_detect_probability=0.5)
    scenario = _scenario(Attack(AttackKind.TAMPERING, 50), defences)
    per_inspection = p_at_least_one_sampled(0.05, 50)
    results = run_replications(scenario, 2000, seed=5)
    _assert_close(_within(results, 12), p_detected_within(0.2, 12, 1, per_inspection), 2000)


def test_intelligence_matches_closed_form() -> None:
    scenario = _scenario(Attack(AttackKind.STOCKPILE, 100), _defences(intelligence_monthly=0.05), months=24)
    results = run_replications(scenario, 2000, seed=6)
    _assert_close(_within(results, 24), p_at_least_one_sampled(0.05, 24), 2000)


def test_layers_combine_independently() -> None:
    scenario = _scenario(
        Attack(AttackKind.DIVERSION, 50), _defences(inspection_monthly=0.1, intelligence_monthly=0.05)
    )
    monthly = combine_layers([0.1, 0.05])
    results = run_replications(scenario, 2000, seed=7)
    _assert_close(_within(results, 12), p_at_least_one_sampled(monthly, 12), 2000)


def test_location_spoofing_matches_closed_form() -> None:
    scenario = _scenario(
        Attack(AttackKind.DIVERSION, 5, spoof_fraction=0.5), _defences(location_check_months=1.0)
    )
    results = run_replications(scenario, 2000, seed=8)
    _assert_close(_within(results, 1), 1 - 0.5**5, 2000)


def test_ramp_delays_detection_start() -> None:
    scenario = _scenario(
        Attack(AttackKind.DIVERSION, 10, start_month=6), _defences(location_check_months=1.0)
    )
    result = simulate(scenario, np.random.default_rng(0))
    assert result.detection_month == 7.0
    assert result.months_to_detection == 1.0
    assert result.layer == "location"


def test_same_seed_same_results() -> None:
    scenario = _scenario(Attack(AttackKind.DIVERSION, 50), _defences(inspection_monthly=0.1))
    assert run_replications(scenario, 20, seed=9) == run_replications(scenario, 20, seed=9)
    assert run_replications(scenario, 20, seed=9) != run_replications(scenario, 20, seed=10)


def test_ruleset_holds_diverted_chips() -> None:
    attack = Attack(AttackKind.DIVERSION, 100)
    verification = _scenario(attack, Defences.none())
    ruleset = _scenario(attack, Defences.none(), kind=AgreementKind.RULESET)
    rng = np.random.default_rng
    assert simulate(verification, rng(0)).compute_gained == 100 * 12
    assert simulate(ruleset, rng(0)).compute_gained == 0.0
    bypassed = _scenario(
        Attack(AttackKind.DIVERSION, 100, bypass_fraction=1.0), Defences.none(), kind=AgreementKind.RULESET
    )
    assert simulate(bypassed, rng(0)).compute_gained == 100 * 12


def test_license_locks_missing_chips() -> None:
    scenario = _scenario(Attack(AttackKind.MISSING, 100), _defences(license_months=3.0))
    # Licenses end with month 3, so each chip yields for 3 months.
    assert simulate(scenario, np.random.default_rng(0)).compute_gained == 100 * 3


def test_stockpile_weighted_by_performance() -> None:
    scenario = _scenario(Attack(AttackKind.STOCKPILE, 100, relative_performance=0.25), Defences.none())
    result = simulate(scenario, np.random.default_rng(0))
    assert not result.detected
    assert result.compute_gained == pytest.approx(100 * 0.25 * 12)


def test_loss_audit_finds_false_loss_claims() -> None:
    fleet = Fleet(chips=20_000, datacenters=10, defector_share=0.5, annual_failure_rate=0.05)
    defences = _defences(loss_audit_alpha=0.01, loss_investigation_detect_probability=1.0)
    scenario = Scenario(fleet=fleet, attacks=(Attack(AttackKind.MISSING, 500),), defences=defences, months=12)
    result = simulate(scenario, np.random.default_rng(0))
    assert result.detected
    assert result.layer == "loss-audit"
    assert result.months_to_detection == 1.0


def test_loss_audit_ignores_spread_claims() -> None:
    # 12 claims a month against about 42 expected failures stay below the alarm threshold.
    fleet = Fleet(chips=20_000, datacenters=10, defector_share=0.5, annual_failure_rate=0.05)
    defences = _defences(loss_audit_alpha=0.001, loss_investigation_detect_probability=1.0)
    attack = Attack(AttackKind.MISSING, 12, ramp_months=12)
    scenario = Scenario(fleet=fleet, attacks=(attack,), defences=defences, months=12)
    results = run_replications(scenario, 200, seed=11)
    assert np.mean([r.detected for r in results]) < 0.2


def test_verification_overhang_raises_lead() -> None:
    attack = Attack(AttackKind.TAMPERING, 100)
    defences = _defences(intelligence_monthly=1.0)
    verification = simulate(_scenario(attack, defences), np.random.default_rng(0))
    ruleset = simulate(_scenario(attack, defences, kind=AgreementKind.RULESET), np.random.default_rng(0))
    defector_chips = verification.lead - verification.compute_gained
    assert verification.detection_month == 1.0
    assert defector_chips > 100
    assert ruleset.lead == pytest.approx(ruleset.compute_gained + 100 * 12)


def test_too_many_attacked_chips() -> None:
    scenario = _scenario(Attack(AttackKind.TAMPERING, 10_000), Defences.none())
    with pytest.raises(InputError, match=r"lower attacks\.0\.chips"):
        simulate(scenario, np.random.default_rng(0))


MIXED = Scenario(
    fleet=Fleet(chips=400, datacenters=8, defector_share=0.5, annual_failure_rate=0.3),
    attacks=(
        Attack(AttackKind.DIVERSION, 10, ramp_months=4, spoof_fraction=0.9, bypass_fraction=0.5),
        Attack(AttackKind.TAMPERING, 20, start_month=2),
        Attack(AttackKind.MISSING, 5, start_month=1, ramp_months=2),
        Attack(AttackKind.COMPROMISED_BATCH, 30, ramp_months=3),
        Attack(AttackKind.STOCKPILE, 40, relative_performance=0.5),
    ),
    defences=Defences(
        production_sampling_rate=0.01,
        inspection_monthly=0.1,
        inspection_chip_fraction=0.2,
        location_check_months=2.0,
        license_months=3.0,
        loss_audit_alpha=0.05,
        intelligence_monthly=0.01,
    ),
    months=12,
)


@pytest.mark.parametrize("kind", list(AgreementKind))
def test_reference_agrees_with_vectorised(kind: AgreementKind) -> None:
    scenario = MIXED.with_values({"kind": kind.value})
    n = 400
    fast = run_replications(scenario, n, seed=12)
    slow = [
        simulate_reference(scenario, np.random.default_rng(c)) for c in np.random.SeedSequence(13).spawn(n)
    ]
    for months in (1, 3, 12):
        a, b = _within(fast, months), _within(slow, months)
        pooled = (a + b) / 2
        stderr = math.sqrt(max(pooled * (1 - pooled), 1e-12) * 2 / n)
        assert abs(a - b) <= Z * stderr + 1e-12, (months, a, b)
    gains_fast = np.array([r.compute_gained for r in fast])
    gains_slow = np.array([r.compute_gained for r in slow])
    stderr = math.sqrt(gains_fast.var() / n + gains_slow.var() / n)
    assert abs(gains_fast.mean() - gains_slow.mean()) <= Z * stderr


def test_summary_feeds_stability() -> None:
    scenario = _scenario(Attack(AttackKind.DIVERSION, 50), _defences(inspection_monthly=0.5))
    summary = summarize(scenario, run_replications(scenario, 100, seed=14))
    assert summary.threshold == pytest.approx(1 / 1.35)
    assert summary.stable == (summary.mean_p_win_given_defect < summary.threshold)
    assert summary.layers["census"] == round(summary.p_detected * 100)


def test_scenario_from_dict_round_trip() -> None:
    assert Scenario.from_dict(MIXED.to_dict()) == MIXED


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"attacks": [{"kind": "teleport", "chips": 1}]}, "use one of"),
        ({"attacks": [{"kind": "diversion", "chips": 0}]}, "positive integer"),
        ({"fleet": {"chipz": 1}}, "unknown fleet key"),
        ({"colour": 1}, "unknown scenario key"),
        ({"attacks": []}, "at least one attack"),
        ({"attacks": [{"kind": "diversion", "chips": 1, "start_month": 99}]}, "horizon"),
    ],
)
def test_scenario_rejects_bad_data(data: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Scenario.from_dict(data)


def test_with_values_rejects_unknown_path() -> None:
    with pytest.raises(InputError, match="unknown parameter"):
        MIXED.with_values({"defences.colour": 1})
    with pytest.raises(InputError, match="attack index"):
        MIXED.with_values({"attacks.9.chips": 1})


@settings(max_examples=8, deadline=None)
@given(
    st.floats(min_value=0.02, max_value=0.5),
    st.integers(min_value=1, max_value=12),
    st.sampled_from([12, 52]),
)
def test_census_property(rate: float, months: int, steps_per_year: int) -> None:
    scenario = _scenario(
        Attack(AttackKind.DIVERSION, 5),
        _defences(inspection_monthly=rate),
        steps_per_year=steps_per_year,
    )
    results = run_replications(scenario, 600, seed=15)
    _assert_close(_within(results, months), p_detected_within(rate, months), 600)
