"""Race model and the verification-versus-ruleset comparison."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexheg.analysis.race import AgreementKind, DefectionScenario, RaceModel, lead_chip_months
from flexheg.errors import InputError

leads = st.floats(min_value=0.0, max_value=1e12)


def test_no_lead_is_even() -> None:
    assert RaceModel(1000.0).p_win(0.0) == 0.5


def test_doubling_compute_with_exponent_two() -> None:
    assert RaceModel(1000.0, 2.0).p_win(1000.0) == pytest.approx(0.8)


@given(leads, leads)
def test_p_win_monotone_and_bounded(a: float, b: float) -> None:
    model = RaceModel(1e6, 1.5)
    low, high = sorted((a, b))
    assert 0.5 <= model.p_win(low) <= model.p_win(high) <= 1.0


@given(st.floats(min_value=0.5, max_value=0.99))
def test_lead_for_p_win_inverts(p_win: float) -> None:
    model = RaceModel(5e5, 3.0)
    assert model.p_win(model.lead_for_p_win(p_win)) == pytest.approx(p_win)


def test_array_matches_scalar() -> None:
    model = RaceModel(100.0)
    values = np.array([0.0, 50.0, 1e9])
    assert list(model.p_win_array(values)) == [model.p_win(v) for v in values]


def test_negative_lead_rejected() -> None:
    with pytest.raises(InputError, match="non-negative"):
        RaceModel(100.0).p_win(-1.0)


def test_bad_model_rejected() -> None:
    with pytest.raises(InputError, match="baseline_chip_months"):
        RaceModel(0.0)


def test_leads_by_kind() -> None:
    scenario = DefectionScenario(
        defector_fleet=1000.0,
        covert_chips=100.0,
        detection_months=2.0,
        response_months_verification=1.0,
        response_months_ruleset=12.0,
        ruleset_unlock_fraction=0.5,
    )
    # Hidden gain 200, then the whole fleet for 1 month under verification.
    assert lead_chip_months(AgreementKind.VERIFICATION, scenario) == 1200.0
    # Hidden gain 200, then 100 covert + 450 unlocked chips for 12 months under a ruleset.
    assert lead_chip_months(AgreementKind.RULESET, scenario) == 200.0 + 550.0 * 12.0


def test_covert_chips_cannot_exceed_fleet() -> None:
    with pytest.raises(InputError, match="covert_chips"):
        DefectionScenario(defector_fleet=10.0, covert_chips=11.0, detection_months=1.0)
