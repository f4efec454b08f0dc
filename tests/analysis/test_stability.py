"""Stability model: thresholds, the always-stable bound and the extensions."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flexheg.analysis.stability import (
    Player,
    always_stable,
    analyze,
    defect_payoff,
    is_stable,
    p_doom_always_stable,
    p_win_threshold,
    round_threshold,
    second_player_payoff,
    treaty_entry,
)
from flexheg.errors import InputError

u_wins = st.floats(min_value=1.0, max_value=20.0)
p_dooms = st.floats(min_value=0.0, max_value=0.999)
probabilities = st.floats(min_value=0.0, max_value=1.0)


def test_threshold_at_ten_percent_doom() -> None:
    threshold = p_win_threshold(1.5, 0.1)
    assert threshold == pytest.approx(1 / 1.35)
    assert round_threshold(threshold) == 0.74
    assert round(threshold, 2) == 0.74


def test_threshold_at_five_percent_doom() -> None:
    threshold = p_win_threshold(1.5, 0.05)
    assert threshold == pytest.approx(1 / 1.425)
    assert round_threshold(threshold) == 0.70
    assert round(threshold, 2) == 0.70


def test_rounding_down_differs_from_nearest() -> None:
    # U(W) = 2 and P(doom) = 0.1 give 0.5556: nearest gives 0.56, the safe bound 0.55.
    threshold = p_win_threshold(2.0, 0.1)
    assert round_threshold(threshold) == 0.55
    assert round(threshold, 2) == 0.56


def test_three_to_one_odds_unstable() -> None:
    assert not is_stable(1.5, 0.1, 0.75)
    assert is_stable(1.5, 0.1, 0.74)


@given(
    st.floats(min_value=1.0, max_value=2.0),
    st.floats(min_value=1e-9, max_value=1.0),
    probabilities,
)
def test_doom_above_inverse_u_win_always_stable(u_win: float, share: float, p_win: float) -> None:
    # P(doom) ranges over (1 / U(W), 1], which is where the inverse bound claims stability.
    p_doom = 1.0 / u_win + share * (1.0 - 1.0 / u_win)
    assume(p_doom > 1.0 / u_win)
    assert is_stable(u_win, p_doom, p_win)


def test_inverse_u_win_bound_fails_above_two() -> None:
    # P(doom) = 0.3 > 1/4, yet a sure winner still gains: 4 * 0.7 = 2.8 > 1.
    assert not is_stable(4.0, 0.3, 1.0)
    assert p_win_threshold(4.0, 0.3) == pytest.approx(1 / 2.8)


@given(u_wins, p_dooms, probabilities)
def test_exact_always_stable_bound(u_win: float, p_doom: float, p_win: float) -> None:
    bound = p_doom_always_stable(u_win)
    assume(abs(p_doom - bound) > 1e-9)
    if p_doom > bound:
        assert is_stable(u_win, p_doom, p_win)
    else:
        assert not always_stable(u_win, p_doom)


@given(u_wins, p_dooms, probabilities)
def test_threshold_matches_condition(u_win: float, p_doom: float, p_win: float) -> None:
    threshold = p_win_threshold(u_win, p_doom)
    assume(abs(p_win - threshold) > 1e-9)
    assert is_stable(u_win, p_doom, p_win) == (p_win < threshold)


@given(u_wins, p_dooms, p_dooms)
def test_threshold_rises_with_doom(u_win: float, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert p_win_threshold(u_win, high) >= p_win_threshold(u_win, low)


@given(u_wins, u_wins, p_dooms)
def test_threshold_falls_with_u_win(a: float, b: float, p_doom: float) -> None:
    low, high = sorted((a, b))
    assert p_win_threshold(high, p_doom) <= p_win_threshold(low, p_doom)


@given(u_wins, p_dooms, probabilities)
def test_payoffs_bounded(u_win: float, p_doom: float, p_win: float) -> None:
    first = defect_payoff(u_win, p_doom, p_win)
    second = second_player_payoff(u_win, p_doom, p_win)
    assert 0.0 <= first <= u_win
    assert first + second == pytest.approx(u_win * (1 - p_doom))


@given(u_wins, p_dooms, st.floats(min_value=0.0, max_value=0.9))
def test_loss_value_lowers_threshold(u_win: float, p_doom: float, u_lose: float) -> None:
    # Wherever defection can pay at all (base threshold <= 1), valuing a loss above 0 makes it
    # more tempting, so the threshold falls.
    assume(u_win > u_lose + 1e-6)
    base = p_win_threshold(u_win, p_doom)
    assume(base <= 1.0)
    assert p_win_threshold(u_win, p_doom, u_lose=u_lose) <= base + 1e-12


def test_loss_value_closed_form() -> None:
    # (1 - 0.1) * (1.5 q + 0.5 (1 - q)) < 1  <=>  q < (1/0.9 - 0.5) / 1.0
    assert p_win_threshold(1.5, 0.1, u_lose=0.5) == pytest.approx(1 / 0.9 - 0.5)


def test_doom_certain_threshold_infinite() -> None:
    assert p_win_threshold(1.5, 1.0) == math.inf


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"u_win": 1.5, "p_doom": 1.2}, "p_doom"),
        ({"u_win": 0.0, "p_doom": 0.1}, "u_win"),
        ({"u_win": 1.5, "p_doom": 0.1, "u_lose": 2.0}, "u_win"),
        ({"u_win": 1.5, "p_doom": 0.1, "u_coop": 0.0}, "u_coop"),
    ],
)
def test_threshold_rejects_bad_input(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        p_win_threshold(**kwargs)


def test_analyze_reports_verdict() -> None:
    result = analyze(1.5, 0.1, 0.6)
    assert result.stable is True
    assert result.defect_payoff == pytest.approx(0.81)
    assert result.to_dict()["p_win_given_defect_threshold_rounded"] == 0.74


def test_entry_leader_at_eighty_percent() -> None:
    leader, laggard = treaty_entry(Player("a", 1.5, 0.2, 0.8), Player("b", 1.5, 0.2, 0.2))
    assert leader.race_payoff == pytest.approx(0.96)
    assert leader.joins
    assert laggard.joins


def test_entry_concession_needed() -> None:
    leader, _ = treaty_entry(Player("a", 1.5, 0.1, 0.8), Player("b", 1.5, 0.1, 0.2))
    assert not leader.joins
    assert leader.concession_needed == pytest.approx(0.08)
    raised, _ = treaty_entry(Player("a", 1.5, 0.1, 0.8, u_coop=1.09), Player("b", 1.5, 0.1, 0.2))
    assert raised.joins


def test_entry_probabilities_must_add_up() -> None:
    with pytest.raises(InputError, match="add up to 1"):
        treaty_entry(Player("a", 1.5, 0.1, 0.8), Player("b", 1.5, 0.1, 0.8))
