"""Export-control classification of AI chips from datasheet figures.

* Total processing performance: ``TPP = 2 * MacTOPS * bit length``, which equals the dense (not
  sparse) peak tera-operations per second at that bit length times the bit length.
* Performance density: ``PD = TPP / die area`` with the area in mm².

Threshold rules are data: each rule version is a TOML file with ordered classes, each class a list
of clauses, each clause a set of conditions that must all hold. The shipped versions live in
``flexheg/analysis/rules/``; a directory of further files can add versions or replace shipped ones
with the same ``id``. The results are a reading of published thresholds, not legal advice.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from flexheg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "Chip",
    "ChipRow",
    "Clause",
    "RuleClass",
    "ThresholdRule",
    "classify",
    "load_rules",
    "parse_chips_csv",
    "parse_rule",
]

REQUIRED_COLUMNS = (
    "name",
    "dense_tops",
    "bit_length",
    "die_area_mm2",
    "bidirectional_io_gbps",
    "designed_for_datacenter",
)
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_NUMERIC_CONDITIONS = ("tpp", "pd", "io_gbps")
_CONDITION_KEYS = frozenset(
    [f"{name}_min" for name in _NUMERIC_CONDITIONS]
    + [f"{name}_below" for name in _NUMERIC_CONDITIONS]
    + ["datacenter"]
)


@dataclass(frozen=True)
class Chip:
    """Datasheet figures of one accelerator.

    Attributes:
        dense_tops: dense peak tera-operations per second at ``bit_length``, taken at the
            precision that gives the highest TPP.
        bit_length: operand width in bits of that precision.
        die_area_mm2: die area in mm² used for performance density.
        bidirectional_io_gbps: aggregate bidirectional transfer rate in GB/s.
        designed_for_datacenter: whether the chip is designed or marketed for data centers.
    """

    name: str
    dense_tops: float
    bit_length: int
    die_area_mm2: float
    bidirectional_io_gbps: float
    designed_for_datacenter: bool

    @property
    def tpp(self) -> float:
        """Total processing performance."""
        return self.dense_tops * self.bit_length

    @property
    def performance_density(self) -> float:
        """TPP per mm² of die area."""
        return self.tpp / self.die_area_mm2


@dataclass(frozen=True)
class ChipRow:
    """A chip read from CSV, with its line number and any ``expected_*`` columns."""

    chip: Chip
    line: int
    expected: Mapping[str, str] = field(default_factory=dict)


def _parse_number(text: str, column: str, line: int, *, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"line {line}: column {column!r} is {text!r}, which is not a number; "
            "write a decimal such as 1978.9"
        ) from None
    if not math.isfinite(value) or value < 0.0 or (positive and value == 0.0):
        bound = "greater than 0" if positive else "0 or more"
        raise InputError(f"line {line}: column {column!r} is {text!r}; it must be {bound}")
    return value


def _parse_bool(text: str, column: str, line: int) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InputError(f"line {line}: column {column!r} is {text!r}; write true or false")


def _parse_row(row: Mapping[str, str], line: int) -> ChipRow:
    name = row["name"].strip()
    if not name:
        raise InputError(f"line {line}: column 'name' is empty; give the chip a name")
    bits = _parse_number(row["bit_length"], "bit_length", line, positive=True)
    if bits != int(bits):
        raise InputError(
            f"line {line}: column 'bit_length' is {row['bit_length']!r}; write a whole number "
            "of bits such as 8 or 16"
        )
    chip = Chip(
        name=name,
        dense_tops=_parse_number(row["dense_tops"], "dense_tops", line, positive=False),
        bit_length=int(bits),
        die_area_mm2=_parse_number(row["die_area_mm2"], "die_area_mm2", line, positive=True),
        bidirectional_io_gbps=_parse_number(
            row["bidirectional_io_gbps"], "bidirectional_io_gbps", line, positive=False
        ),
        designed_for_datacenter=_parse_bool(row["designed_for_datacenter"], "designed_for_datacenter", line),
    )
    expected = {key: value for key, value in row.items() if key.startswith("expected_")}
    return ChipRow(chip=chip, line=line, expected=expected)


def parse_chips_csv(text: str) -> list[ChipRow]:
    """Parse a chip CSV with a header row; line numbers in errors count from 1 at the header.

    Required columns are those of :class:`Chip`. Columns that start with ``expected_`` are kept
    as text for comparison. Any other column is an error, because a misspelt required column
    would otherwise go unnoticed.

    Raises:
        InputError: naming the line, the column and the fix.
    """
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise InputError(f"line 1: invalid CSV header ({exc})") from None
    if not header:
        raise InputError(f"the CSV file is empty; start it with the header {','.join(REQUIRED_COLUMNS)}")

    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise InputError(f"line 1: missing column(s) {', '.join(missing)}; add them to the header")
    unknown = [c for c in header if c not in REQUIRED_COLUMNS and not c.startswith("expected_")]
    if unknown:
        raise InputError(
            f"line 1: unknown column(s) {', '.join(unknown)}; rename them to one of "
            f"{', '.join(REQUIRED_COLUMNS)} or prefix them with expected_"
        )
    if len(set(header)) != len(header):
        raise InputError("line 1: a column name appears twice in the header; keep one of each")

    rows: list[ChipRow] = []
    names: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row or any(value is None for value in row.values()):
                raise InputError(
                    f"line {line}: expected {len(header)} fields, got a different number; "
                    "quote values that contain commas"
                )
            parsed = _parse_row(row, line)
            if parsed.chip.name in names:
                raise InputError(
                    f"line {line}: chip {parsed.chip.name!r} already appears on line "
                    f"{names[parsed.chip.name]}; give each row a distinct name"
                )
            names[parsed.chip.name] = line
            rows.append(parsed)
    except csv.Error as exc:
        raise InputError(f"line {reader.line_num}: invalid CSV ({exc})") from None
    return rows


@dataclass(frozen=True)
class Clause:
    """Conditions that must all hold; a bound left as None is not checked."""

    tpp_min: float | None = None
    tpp_below: float | None = None
    pd_min: float | None = None
    pd_below: float | None = None
    io_gbps_min: float | None = None
    io_gbps_below: float | None = None
    datacenter: bool | None = None

    def matches(self, chip: Chip) -> bool:
        values = {
            "tpp": chip.tpp,
            "pd": chip.performance_density,
            "io_gbps": chip.bidirectional_io_gbps,
        }
        for name, value in values.items():
            low: float | None = getattr(self, f"{name}_min")
            high: float | None = getattr(self, f"{name}_below")
            if low is not None and value < low:
                return False
            if high is not None and value >= high:
                return False
        return self.datacenter is None or chip.designed_for_datacenter == self.datacenter


@dataclass(frozen=True)
class RuleClass:
    """A named class that applies when any of its clauses matches."""

    name: str
    clauses: tuple[Clause, ...]


@dataclass(frozen=True)
class ThresholdRule:
    """One version of a threshold rule: ordered classes and the class of everything else."""

    id: str
    title: str
    default_class: str
    classes: tuple[RuleClass, ...]
    source: str = ""


def classify(chip: Chip, rule: ThresholdRule) -> str:
    """Return the first class of ``rule`` that ``chip`` falls in, or the rule's default class."""
    for rule_class in rule.classes:
        if any(clause.matches(chip) for clause in rule_class.clauses):
            return rule_class.name
    return rule.default_class


def _rule_error(source: str, where: str, problem: str) -> InputError:
    return InputError(f"{source}: {where}: {problem}")


def _parse_clause(data: Any, source: str, where: str) -> Clause:
    if not isinstance(data, dict) or not data:
        raise _rule_error(source, where, "a clause must be a non-empty table of conditions")
    unknown = sorted(set(data) - _CONDITION_KEYS)
    if unknown:
        raise _rule_error(
            source,
            where,
            f"unknown condition(s) {', '.join(unknown)}; use {', '.join(sorted(_CONDITION_KEYS))}",
        )
    values: dict[str, float | bool] = {}
    for key, value in data.items():
        if key == "datacenter":
            if not isinstance(value, bool):
                raise _rule_error(source, where, f"datacenter is {value!r}; write true or false")
            values[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _rule_error(source, where, f"{key} is {value!r}; write a finite number")
        values[key] = float(value)
    clause = Clause(**values)  # type: ignore[arg-type]
    for name in _NUMERIC_CONDITIONS:
        low, high = getattr(clause, f"{name}_min"), getattr(clause, f"{name}_below")
        if low is not None and high is not None and low >= high:
            raise _rule_error(source, where, f"{name}_min ({low}) must be below {name}_below ({high})")
    return clause


def parse_rule(text: str, source: str = "<rule>") -> ThresholdRule:
    """Parse one rule version from TOML text.

    Raises:
        InputError: naming ``source``, the class and clause, and the fix.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: invalid TOML ({exc})") from None

    allowed = {"id", "title", "default_class", "classes", "source"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _rule_error(source, "top level", f"unknown key(s) {', '.join(unknown)}")
    for key in ("id", "title", "default_class"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise _rule_error(source, "top level", f"missing or empty string {key!r}; add it")
    raw_classes = data.get("classes")
    if not isinstance(raw_classes, list) or not raw_classes:
        raise _rule_error(source, "top level", "add at least one [[classes]] table")

    classes: list[RuleClass] = []
    for index, raw in enumerate(raw_classes, start=1):
        where = f"class {index}"
        if not isinstance(raw, dict) or set(raw) - {"name", "clauses"}:
            raise _rule_error(source, where, "a class has only 'name' and [[classes.clauses]]")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _rule_error(source, where, "missing 'name'; give the class a name")
        raw_clauses = raw.get("clauses")
        if not isinstance(raw_clauses, list) or not raw_clauses:
            raise _rule_error(source, f"class {name!r}", "add at least one [[classes.clauses]]")
        clauses = tuple(
            _parse_clause(clause, source, f"class {name!r} clause {number}")
            for number, clause in enumerate(raw_clauses, start=1)
        )
        classes.append(RuleClass(name=name, clauses=clauses))
    names = [rule_class.name for rule_class in classes]
    if len(set(names)) != len(names) or data["default_class"] in names:
        raise _rule_error(source, "top level", "class names and default_class must be distinct")

    source_text = data.get("source", "")
    if not isinstance(source_text, str):
        raise _rule_error(source, "top level", "'source' must be a string")
    return ThresholdRule(
        id=data["id"],
        title=data["title"],
        default_class=data["default_class"],
        classes=tuple(classes),
        source=source_text,
    )


def _shipped_rule_texts() -> Iterable[tuple[str, str]]:
    folder = resources.files("flexheg.analysis") / "rules"
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".toml"):
            yield f"flexheg/analysis/rules/{entry.name}", entry.read_text(encoding="utf-8")


def load_rules(rules_dir: Path | None = None) -> dict[str, ThresholdRule]:
    """Load the shipped rule versions, then those in ``rules_dir``, keyed and sorted by id.

    A file in ``rules_dir`` whose ``id`` matches a shipped rule replaces it.

    Raises:
        InputError: if ``rules_dir`` is not a directory, contains no TOML file, or a file is
            invalid, or two files in it share an id.
    """
    rules: dict[str, ThresholdRule] = {}
    for source, text in _shipped_rule_texts():
        rule = parse_rule(text, source)
        rules[rule.id] = rule

    if rules_dir is not None:
        if not rules_dir.is_dir():
            raise InputError(f"rules directory {str(rules_dir)!r} not found; pass a directory")
        paths = sorted(rules_dir.glob("*.toml"))
        if not paths:
            raise InputError(f"no *.toml rule files in {str(rules_dir)!r}")
        seen: dict[str, Path] = {}
        for path in paths:
            rule = parse_rule(path.read_text(encoding="utf-8"), str(path))
            if rule.id in seen:
                raise InputError(
                    f"{path}: id {rule.id!r} is already used by {seen[rule.id]}; give each file its own id"
                )
            seen[rule.id] = path
            if rule.id in rules:
                logger.debug("rule %s from %s replaces the shipped version", rule.id, path)
            rules[rule.id] = rule
    return dict(sorted(rules.items()))
