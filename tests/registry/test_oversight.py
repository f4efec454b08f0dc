"""Production oversight draws and the detection report."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexheg.errors import InputError
from flexheg.registry import (
    Registry,
    allocate_to_customers,
    assign_to_testing,
    detection_report,
    draw_extensive_testing,
    draw_research_samples,
)

from .factories import NOW

DEVICES = [f"gp-{i:05d}" for i in range(3000)]


def test_testing_assignment_spreads_every_line() -> None:
    lines = {"line-a": DEVICES[:600], "line-b": DEVICES[600:1200]}
    assignment = assign_to_testing("seed", lines, ["lab-1", "lab-2", "lab-3"])
    assert set(assignment) == set(DEVICES[:1200])
    for devices in lines.values():
        per_lab = Counter(assignment[d] for d in devices)
        assert sorted(per_lab.values()) == [200, 200, 200]
    assert assignment == assign_to_testing("seed", lines, ["lab-3", "lab-1", "lab-2"])
    assert assignment != assign_to_testing("other", lines, ["lab-1", "lab-2", "lab-3"])


def test_testing_assignment_input_errors() -> None:
    with pytest.raises(InputError, match="no testing facilities"):
        assign_to_testing("s", {"a": ["x"]}, [])
    with pytest.raises(InputError, match="repeats"):
        assign_to_testing("s", {"a": ["x"], "b": ["x"]}, ["lab"])


def test_extensive_testing_rate() -> None:
    drawn = draw_extensive_testing("seed", DEVICES, Fraction(1, 100))
    assert 10 <= len(drawn) <= 55
    assert drawn == draw_extensive_testing("seed", list(reversed(DEVICES)), Fraction(1, 100))
    assert draw_extensive_testing("seed", DEVICES, Fraction(1)) == sorted(DEVICES)
    assert draw_extensive_testing("seed", DEVICES, Fraction(0)) == []
    with pytest.raises(InputError, match="between 0 and 1"):
        draw_extensive_testing("seed", DEVICES, Fraction(3, 2))


@settings(max_examples=50)
@given(st.dictionaries(st.from_regex(r"c[0-9]{1,3}", fullmatch=True), st.integers(0, 20), max_size=6),
       st.text(min_size=1, max_size=10))
def test_customer_allocation_partitions(orders: dict[str, int], seed: str) -> None:
    pool = DEVICES[:200]
    allocation = allocate_to_customers(seed, pool, orders)
    handed = [d for devices in allocation.values() for d in devices]
    assert len(handed) == len(set(handed)) == sum(orders.values())
    assert {c: len(d) for c, d in allocation.items()} == orders
    assert set(handed) <= set(pool)


def test_customer_allocation_is_not_a_batch() -> None:
    allocation = allocate_to_customers("seed", DEVICES[:1000], {"buyer": 100})
    taken = sorted(DEVICES.index(d) for d in allocation["buyer"])
    assert taken[-1] - taken[0] > 500
    with pytest.raises(InputError, match="only 1000"):
        allocate_to_customers("seed", DEVICES[:1000], {"buyer": 1001})


def test_research_samples() -> None:
    samples = draw_research_samples("seed", DEVICES, ["uni-b", "uni-a"], 5)
    assert sorted(samples) == ["uni-a", "uni-b"]
    assert all(len(ids) == 5 for ids in samples.values())
    assert not set(samples["uni-a"]) & set(samples["uni-b"])
    with pytest.raises(InputError, match="available"):
        draw_research_samples("seed", DEVICES[:3], ["uni-a"], 4)


def test_detection_report_matches_formula() -> None:
    report = detection_report(Fraction(1, 1000), 1000)
    assert report["p_at_least_one_sampled"] == pytest.approx(1 - (1 - 0.001) ** 1000)
    assert report["p_at_least_one_sampled"] == pytest.approx(0.632, abs=1e-3)
    assert detection_report(0.5, 0)["p_at_least_one_sampled"] == 0.0


def test_draw_is_recorded(registry: Registry) -> None:
    result = draw_extensive_testing("seed", DEVICES[:100], Fraction(1, 10))
    stored = registry.record_oversight_draw("extensive-testing", seed="seed",
                                            parameters={"rate": "1/10"}, result=result,
                                            actor="ib", now=NOW)
    assert stored["id"] >= 1
    assert stored["result"] == result
