"""The public, deterministic inspection draw."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexheg.registry import Stratum, allocate, select_sample
from flexheg.registry._sampling import bernoulli_selected, draw_key

_counts = st.dictionaries(
    st.builds(Stratum, st.sampled_from(["device", "chip", "fab"]), st.integers(1, 5)),
    st.integers(0, 50),
    max_size=8,
)


@settings(max_examples=200)
@given(_counts, st.integers(0, 300))
def test_allocate_sums_and_caps(counts: dict[Stratum, int], size: int) -> None:
    allocation = allocate(counts, size)
    assert sum(allocation.values()) == min(size, sum(counts.values()))
    for stratum, count in counts.items():
        assert 0 <= allocation[stratum] <= count


def test_allocate_follows_risk_weight() -> None:
    low, high = Stratum("device", 1), Stratum("device", 3)
    assert allocate({low: 100, high: 100}, 40) == {low: 10, high: 30}


def test_allocate_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        allocate({}, -1)


def _population(n: int) -> list[tuple[str, str, int]]:
    return [(f"e-{i}", "device" if i % 3 else "chip", 1 + i % 2) for i in range(n)]


def test_select_sample_is_deterministic() -> None:
    first = select_sample("seed-1", _population(200), 20)
    again = select_sample("seed-1", list(reversed(_population(200))), 20)
    other = select_sample("seed-2", _population(200), 20)
    assert first == again
    assert first[1] != other[1]
    assert len(first[0]) == 20
    assert len({entity_id for _, entity_id in first[0]}) == 20


def test_select_sample_matches_independent_recomputation() -> None:
    seed = "sha256:" + 64 * "0"
    population = [(f"e-{i}", "device", 1) for i in range(10)]
    selected, _ = select_sample(seed, population, 3)

    def key(entity_id: str) -> bytes:
        text = json.dumps(["flexheg-stratified-sha256-v1", seed, "device", 1, entity_id],
                          separators=(",", ":"))
        return hashlib.sha256(text.encode()).digest()

    expected = sorted((entity_id for entity_id, _, _ in population), key=key)[:3]
    assert [entity_id for _, entity_id in selected] == expected


@settings(max_examples=50)
@given(st.text(min_size=1, max_size=20), st.integers(1, 60))
def test_select_sample_properties(seed: str, size: int) -> None:
    population = _population(50)
    selected, _ = select_sample(seed, population, size)
    ids = [entity_id for _, entity_id in selected]
    assert len(ids) == len(set(ids)) == min(size, 50)
    assert set(ids) <= {entity_id for entity_id, _, _ in population}


def test_bernoulli_exact_edges() -> None:
    assert not bernoulli_selected(b"\x00" * 32, Fraction(0))
    assert bernoulli_selected(b"\xff" * 32, Fraction(1))
    assert bernoulli_selected(b"\x00" * 32, Fraction(1, 1000))
    assert not bernoulli_selected(b"\xff" * 32, Fraction(999, 1000))


def test_bernoulli_rate_close_to_expected() -> None:
    drawn = sum(bernoulli_selected(draw_key("s", "t", i), Fraction(1, 10)) for i in range(20_000))
    assert 1800 < drawn < 2200
