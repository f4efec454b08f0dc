"""Closed-form detection probabilities."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexheg.analysis.detection import (
    combine_layers,
    expected_periods_to_detection,
    p_at_least_one_sampled,
    p_batch_caught,
    p_detected_within,
    p_none_sampled,
    periods_for_confidence,
    rate_per_step,
    sampling_rate_for_confidence,
)
from flexheg.errors import InputError

probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
counts = st.integers(min_value=0, max_value=10**7)


def test_sampling_thousand_at_one_in_thousand() -> None:
    value = p_at_least_one_sampled(1 / 1000, 1000)
    assert round(value, 2) == 0.63
    assert value == pytest.approx(1 - (1 - 1 / 1000) ** 1000, rel=1e-12)


def test_none_sampled_is_complement() -> None:
    assert p_none_sampled(1 / 1000, 1000) == pytest.approx(0.3677, abs=1e-4)


@pytest.mark.parametrize(
    ("rate", "compromised", "expected"),
    [(0.0, 5, 0.0), (1.0, 5, 1.0), (0.5, 0, 0.0), (1.0, 0, 0.0), (0.5, 2, 0.75)],
)
def test_sampling_edge_cases(rate: float, compromised: int, expected: float) -> None:
    assert p_at_least_one_sampled(rate, compromised) == pytest.approx(expected)


@pytest.mark.parametrize(("rate", "compromised"), [(-0.1, 1), (1.5, 1), (math.nan, 1), (0.1, -1)])
def test_sampling_rejects_bad_input(rate: float, compromised: int) -> None:
    with pytest.raises(InputError):
        p_at_least_one_sampled(rate, compromised)


@given(probabilities, counts)
def test_sampling_bounds_and_complement(rate: float, compromised: int) -> None:
    hit = p_at_least_one_sampled(rate, compromised)
    assert 0.0 <= hit <= 1.0
    assert hit + p_none_sampled(rate, compromised) == pytest.approx(1.0, abs=1e-12)


@given(probabilities, st.integers(min_value=0, max_value=10**6))
def test_sampling_monotone_in_batch(rate: float, compromised: int) -> None:
    assert p_at_least_one_sampled(rate, compromised + 1) >= p_at_least_one_sampled(rate, compromised)


@given(probabilities, probabilities, st.integers(min_value=0, max_value=10**6))
def test_sampling_monotone_in_rate(a: float, b: float, compromised: int) -> None:
    low, high = sorted((a, b))
    assert p_at_least_one_sampled(high, compromised) >= p_at_least_one_sampled(low, compromised)


@given(st.lists(probabilities, max_size=8))
def test_layers_match_product(layers: list[float]) -> None:
    expected = 1.0 - math.prod(1.0 - p for p in layers)
    combined = combine_layers(layers)
    assert combined == pytest.approx(expected, abs=1e-12)
    assert combined >= max(layers, default=0.0) - 1e-12


def test_layers_empty_detects_nothing() -> None:
    assert combine_layers([]) == 0.0


def test_batch_caught_with_imperfect_testing() -> None:
    assert p_batch_caught(0.001, 1000, 0.5) == pytest.approx(1 - (1 - 0.0005) ** 1000)


def test_inspection_within_year() -> None:
    assert p_detected_within(1 / 12, 12) == pytest.approx(1 - (11 / 12) ** 12)
    assert p_detected_within(0.1, 6, sites=2) == pytest.approx(1 - 0.9**12)


def test_expected_periods() -> None:
    assert expected_periods_to_detection(0.25) == 4.0
    assert expected_periods_to_detection(0.0) == math.inf


@given(
    st.floats(min_value=1e-4, max_value=0.999),
    st.floats(min_value=0.01, max_value=0.999),
)
def test_periods_for_confidence_is_minimal(per_period: float, confidence: float) -> None:
    periods = periods_for_confidence(per_period, confidence)
    assert p_at_least_one_sampled(per_period, periods) >= confidence
    assert periods == 0 or p_at_least_one_sampled(per_period, periods - 1) < confidence


def test_periods_for_confidence_unreachable() -> None:
    with pytest.raises(InputError, match="never reached"):
        periods_for_confidence(0.0, 0.5)


@given(st.integers(min_value=1, max_value=10**6), st.floats(min_value=0.0, max_value=0.999))
def test_sampling_rate_inverts(compromised: int, confidence: float) -> None:
    rate = sampling_rate_for_confidence(compromised, confidence)
    assert p_at_least_one_sampled(rate, compromised) == pytest.approx(confidence, abs=1e-9)


@given(probabilities, st.sampled_from([1.0, 52 / 12, 30.0]))
def test_rate_per_step_keeps_total(rate: float, steps: float) -> None:
    per_step = rate_per_step(rate, steps)
    assert 1.0 - (1.0 - per_step) ** steps == pytest.approx(rate, abs=1e-9)
