"""Chip classification: accelerator vectors, the CSV parser and rule files."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexheg.analysis.chips import Chip, classify, load_rules, parse_chips_csv, parse_rule
from flexheg.errors import InputError

VECTORS = Path(__file__).parent.parent / "vectors" / "chips" / "accelerators.csv"
RULE_FOR_COLUMN = {
    "expected_class_2022": "eccn-3a090-2022-10",
    "expected_class_2023": "eccn-3a090-2023-10",
}
HEADER = "name,dense_tops,bit_length,die_area_mm2,bidirectional_io_gbps,designed_for_datacenter"


def _rows() -> list[tuple[str, object]]:
    rows = parse_chips_csv(VECTORS.read_text(encoding="utf-8"))
    return [(row.chip.name, row) for row in rows]


def test_vectors_present() -> None:
    assert len(_rows()) == 5


@pytest.mark.parametrize(("name", "row"), _rows())
def test_vector_classes(name: str, row: object) -> None:
    rules = load_rules()
    for column, rule_id in RULE_FOR_COLUMN.items():
        expected = row.expected[column]  # type: ignore[attr-defined]
        assert classify(row.chip, rules[rule_id]) == expected, (name, rule_id)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "row"), _rows())
def test_vector_tpp(name: str, row: object) -> None:
    expected = float(row.expected["expected_tpp"])  # type: ignore[attr-defined]
    assert abs(row.chip.tpp - expected) <= 0.5, name  # type: ignore[attr-defined]


def _chip(tpp: float, area: float, io: float = 900.0, datacenter: bool = True) -> Chip:
    return Chip("x", tpp / 8, 8, area, io, datacenter)


@pytest.mark.parametrize(
    ("tpp", "area", "expected"),
    [
        (4800.0, 2000.0, "3A090.a"),
        (1600.0, 1600.0 / 5.92, "3A090.a"),
        (2400.0, 1000.0, "3A090.b"),
        (2399.0, 1000.0, "not-controlled"),
        (1600.0, 500.0, "3A090.b"),
        (1599.0, 100.0, "not-controlled"),
    ],
)
def test_2023_boundaries(tpp: float, area: float, expected: str) -> None:
    rule = load_rules()["eccn-3a090-2023-10"]
    assert classify(_chip(tpp, area), rule) == expected


def test_2022_needs_interconnect() -> None:
    rule = load_rules()["eccn-3a090-2022-10"]
    assert classify(_chip(5000.0, 800.0, io=599.0), rule) == "not-controlled"
    assert classify(_chip(5000.0, 800.0, io=600.0), rule) == "3A090"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("A,abc,8,800,900,true", "line 2: column 'dense_tops' is 'abc'"),
        ("A,100,8,0,900,true", "line 2: column 'die_area_mm2'"),
        ("A,100,8.5,800,900,true", "whole number"),
        ("A,100,8,800,900,maybe", "write true or false"),
        (",100,8,800,900,true", "column 'name' is empty"),
        ("A,100,8,800,900", "expected 6 fields"),
        ("A,100,8,800,900,true,extra", "expected 6 fields"),
    ],
)
def test_csv_bad_row(row: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_chips_csv(f"{HEADER}\n{row}\n")


def test_csv_error_names_later_line() -> None:
    good = "A,100,8,800,900,true"
    with pytest.raises(InputError, match="line 4"):
        parse_chips_csv(f"{HEADER}\n{good}\nB,1,8,1,1,true\nC,x,8,1,1,true\n")


def test_csv_duplicate_name() -> None:
    with pytest.raises(InputError, match="line 3: chip 'A' already appears on line 2"):
        parse_chips_csv(f"{HEADER}\nA,1,8,1,1,true\nA,2,8,1,1,true\n")


def test_csv_missing_and_unknown_columns() -> None:
    with pytest.raises(InputError, match="missing column"):
        parse_chips_csv("name,dense_tops\nA,1\n")
    with pytest.raises(InputError, match="unknown column"):
        parse_chips_csv(f"{HEADER},colour\nA,1,8,1,1,true,red\n")


def test_csv_empty() -> None:
    with pytest.raises(InputError, match="empty"):
        parse_chips_csv("")


names = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=',"'),
    min_size=1,
    max_size=12,
)
numbers = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)


@given(
    st.lists(
        st.tuples(names, numbers, st.sampled_from([4, 8, 16, 32]), numbers, numbers, st.booleans()),
        max_size=6,
        unique_by=lambda item: item[0],
    )
)
def test_csv_round_trip(items: list[tuple[str, float, int, float, float, bool]]) -> None:
    lines = [HEADER] + [
        f"{n},{tops!r},{bits},{area!r},{io!r},{str(dc).lower()}" for n, tops, bits, area, io, dc in items
    ]
    rows = parse_chips_csv("\n".join(lines) + "\n")
    assert [row.chip for row in rows] == [Chip(*item) for item in items]
    assert [row.line for row in rows] == list(range(2, len(items) + 2))


@given(st.text(max_size=200))
def test_csv_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(InputError):
        parse_chips_csv(text)


RULE = """
id = "test-rule"
title = "Test"
default_class = "free"
[[classes]]
name = "big"
[[classes.clauses]]
tpp_min = 1000
datacenter = true
"""


def test_rule_datacenter_condition() -> None:
    rule = parse_rule(RULE)
    assert classify(_chip(2000.0, 100.0, datacenter=True), rule) == "big"
    assert classify(_chip(2000.0, 100.0, datacenter=False), rule) == "free"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id = ", "invalid TOML"),
        (RULE.replace("tpp_min", "tops_min"), "unknown condition"),
        (RULE.replace("tpp_min = 1000", "tpp_min = 'x'"), "write a finite number"),
        (RULE.replace('default_class = "free"', ""), "default_class"),
        (RULE.replace('name = "big"', 'name = "free"'), "distinct"),
        (RULE + "tpp_below = 10\n", "must be below"),
        (RULE.replace("datacenter = true", "datacenter = 1"), "true or false"),
    ],
)
def test_rule_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_rule(text, "r.toml")


def test_rules_dir_adds_and_replaces(tmp_path: Path) -> None:
    (tmp_path / "extra.toml").write_text(RULE, encoding="utf-8")
    replacement = RULE.replace("test-rule", "eccn-3a090-2022-10")
    (tmp_path / "override.toml").write_text(replacement, encoding="utf-8")
    rules = load_rules(tmp_path)
    assert "test-rule" in rules
    assert rules["eccn-3a090-2022-10"].title == "Test"
    assert "eccn-3a090-2023-10" in rules


def test_rules_dir_duplicate_id(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(RULE, encoding="utf-8")
    (tmp_path / "b.toml").write_text(RULE, encoding="utf-8")
    with pytest.raises(InputError, match="already used"):
        load_rules(tmp_path)


def test_rules_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_rules(tmp_path / "nope")
