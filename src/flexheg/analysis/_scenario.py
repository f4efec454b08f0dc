"""Parameters of the fleet simulation: the fleet, the attacks, the defences and the race."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from flexheg.analysis.race import AgreementKind
from flexheg.errors import InputError

__all__ = ["Attack", "AttackKind", "Defences", "Fleet", "RaceSettings", "Scenario"]


class AttackKind(enum.StrEnum):
    """Ways a defector gains compute that the agreement forbids."""

    DIVERSION = "diversion"  # registered chips moved to a secret data center
    TAMPERING = "tampering"  # registered chips tampered with in place
    STOCKPILE = "stockpile"  # chips without the mechanism, never registered
    COMPROMISED_BATCH = "compromised-batch"  # new chips built with a backdoor
    MISSING = "missing"  # registered chips reported lost but kept in use


def _probability(owner: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InputError(f"{owner}.{name} must be a probability between 0 and 1, got {value!r}")


def _non_negative(owner: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < math.inf:
        raise InputError(f"{owner}.{name} must be a non-negative finite number, got {value!r}")


@dataclass(frozen=True)
class Fleet:
    """The registered fleet at the start of the simulation.

    Attributes:
        chips: registered chips with the mechanism.
        datacenters: declared data centers; chips are spread over them uniformly at random.
        defector_share: fraction of the data centers (and so of the chips) the defector owns.
        annual_failure_rate: probability that a chip fails within a year; failures are reported.
    """

    chips: int = 1_000_000
    datacenters: int = 2_000
    defector_share: float = 0.5
    annual_failure_rate: float = 0.02

    def __post_init__(self) -> None:
        if isinstance(self.chips, bool) or not isinstance(self.chips, int) or self.chips < 1:
            raise InputError(f"fleet.chips must be a positive integer, got {self.chips!r}")
        if not isinstance(self.datacenters, int) or self.datacenters < 1:
            raise InputError(f"fleet.datacenters must be a positive integer, got {self.datacenters!r}")
        _probability("fleet", "defector_share", self.defector_share)
        _probability("fleet", "annual_failure_rate", self.annual_failure_rate)
        if self.defector_datacenters < 1:
            raise InputError(
                f"fleet.defector_share {self.defector_share!r} gives the defector no data center "
                f"out of {self.datacenters}; raise it"
            )

    @property
    def defector_datacenters(self) -> int:
        return round(self.defector_share * self.datacenters)


@dataclass(frozen=True)
class Attack:
    """One attack program.

    Attributes:
        kind: what the defector does.
        chips: chips involved.
        start_month: month in which the first chip is involved.
        ramp_months: chips join evenly over this many months (0: all at once).
        bypass_fraction: fraction of diverted or missing chips whose guarantees the defector also
            defeats, so that rules and license locks no longer stop them.
        spoof_fraction: fraction of diverted chips that pass location checks from the secret site.
        relative_performance: compute of a stockpiled chip relative to a registered one.
        intelligence_monthly: monthly probability that intelligence uncovers this program; None
            uses the defences' value.
    """

    kind: AttackKind
    chips: int
    start_month: float = 0.0
    ramp_months: float = 0.0
    bypass_fraction: float = 0.0
    spoof_fraction: float = 0.0
    relative_performance: float = 1.0
    intelligence_monthly: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, AttackKind):
            raise InputError(
                f"attack.kind must be one of {', '.join(k.value for k in AttackKind)}, got {self.kind!r}"
            )
        if isinstance(self.chips, bool) or not isinstance(self.chips, int) or self.chips < 1:
            raise InputError(f"attack.chips must be a positive integer, got {self.chips!r}")
        _non_negative("attack", "start_month", self.start_month)
        _non_negative("attack", "ramp_months", self.ramp_months)
        _probability("attack", "bypass_fraction", self.bypass_fraction)
        _probability("attack", "spoof_fraction", self.spoof_fraction)
        _non_negative("attack", "relative_performance", self.relative_performance)
        if self.intelligence_monthly is not None:
            _probability("attack", "intelligence_monthly", self.intelligence_monthly)


@dataclass(frozen=True)
class Defences:
    """Defence layers; a rate or interval of 0 switches a layer off.

    Attributes:
        production_sampling_rate: fraction of new chips taken for destructive testing.
        production_detect_probability: probability that testing a sampled backdoored chip finds
            the backdoor.
        inspection_monthly: probability that a given data center is inspected in a month.
        inspection_chip_fraction: fraction of a data center's chips examined in an inspection.
        tamper_detect_probability: probability that examining a tampered chip finds tampering.
        backdoor_detect_probability: probability that examining a backdoored chip finds it.
        census_detect_probability: probability that an inspection's chip count finds chips
            missing from the data center.
        location_check_months: interval of location checks; a diverted chip that does not spoof
            its location fails them.
        location_detect_probability: probability that one failed location check is acted on.
        license_months: interval of operating-license renewal. A diverted chip that fails its
            location check cannot renew; a chip reported lost has its license revoked. Either
            locks at the end of its license unless its guarantees were defeated.
        renewal_detect_probability: probability that a failed renewal of a chip not reported lost
            exposes the diversion.
        loss_audit_alpha: false-alarm rate of the monthly test on the defector's reported losses.
        loss_investigation_detect_probability: probability that an investigation of a flagged
            month uncovers chips falsely reported lost.
        intelligence_monthly: monthly probability that intelligence uncovers an attack program.
    """

    production_sampling_rate: float = 0.001
    production_detect_probability: float = 1.0
    inspection_monthly: float = 1.0 / 12.0
    inspection_chip_fraction: float = 0.02
    tamper_detect_probability: float = 0.5
    backdoor_detect_probability: float = 0.1
    census_detect_probability: float = 1.0
    location_check_months: float = 1.0
    location_detect_probability: float = 1.0
    license_months: float = 6.0
    renewal_detect_probability: float = 1.0
    loss_audit_alpha: float = 0.01
    loss_investigation_detect_probability: float = 0.5
    intelligence_monthly: float = 0.02

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.endswith("_months"):
                _non_negative("defences", item.name, value)
            else:
                _probability("defences", item.name, value)

    @classmethod
    def none(cls) -> Defences:
        """Return a set with every layer switched off, as a base for single-layer studies."""
        return cls(
            production_sampling_rate=0.0,
            inspection_monthly=0.0,
            location_check_months=0.0,
            license_months=0.0,
            loss_audit_alpha=0.0,
            intelligence_monthly=0.0,
        )


@dataclass(frozen=True)
class RaceSettings:
    """The race that follows a detected defection; see :mod:`flexheg.analysis.race`.

    Attributes:
        baseline_months: each side brings this many months of its own fleet's compute.
        decisiveness: the Tullock contest exponent.
        response_months_verification: the other side's response time under verification.
        response_months_ruleset: the other side's response time under a ruleset.
        ruleset_unlock_fraction: share of the rest of its fleet the defector unlocks once open.
        u_win: value of winning relative to cooperation, for the stability verdict.
        p_doom: probability of catastrophe in an unrestricted race.
    """

    baseline_months: float = 24.0
    decisiveness: float = 2.0
    response_months_verification: float = 1.0
    response_months_ruleset: float = 12.0
    ruleset_unlock_fraction: float = 0.0
    u_win: float = 1.5
    p_doom: float = 0.1

    def __post_init__(self) -> None:
        if not self.baseline_months > 0 or math.isinf(self.baseline_months):
            raise InputError(
                f"race.baseline_months must be positive and finite, got {self.baseline_months!r}"
            )
        if not self.decisiveness > 0 or math.isinf(self.decisiveness):
            raise InputError(f"race.decisiveness must be positive and finite, got {self.decisiveness!r}")
        _non_negative("race", "response_months_verification", self.response_months_verification)
        _non_negative("race", "response_months_ruleset", self.response_months_ruleset)
        _probability("race", "ruleset_unlock_fraction", self.ruleset_unlock_fraction)
        _probability("race", "p_doom", self.p_doom)
        if not self.u_win > 0 or math.isinf(self.u_win):
            raise InputError(f"race.u_win must be positive and finite, got {self.u_win!r}")


@dataclass(frozen=True)
class Scenario:
    """Everything one replication needs.

    Attributes:
        steps_per_year: 12 for monthly steps, 52 for weekly steps (any positive integer works).
    """

    kind: AgreementKind = AgreementKind.VERIFICATION
    fleet: Fleet = field(default_factory=Fleet)
    attacks: tuple[Attack, ...] = ()
    defences: Defences = field(default_factory=Defences)
    race: RaceSettings = field(default_factory=RaceSettings)
    months: int = 60
    steps_per_year: int = 12

    def __post_init__(self) -> None:
        if not isinstance(self.kind, AgreementKind):
            raise InputError(f"kind must be verification or ruleset, got {self.kind!r}")
        if isinstance(self.months, bool) or not isinstance(self.months, int) or self.months < 1:
            raise InputError(f"months must be a positive integer, got {self.months!r}")
        if not isinstance(self.steps_per_year, int) or self.steps_per_year < 1:
            raise InputError(
                f"steps_per_year must be a positive integer such as 12 or 52, got {self.steps_per_year!r}"
            )
        if not self.attacks:
            raise InputError("a scenario needs at least one attack")
        for attack in self.attacks:
            if attack.start_month >= self.months:
                raise InputError(
                    f"attack {attack.kind.value} starts in month {attack.start_month}, after the "
                    f"{self.months}-month horizon; start it earlier or extend months"
                )

    @property
    def step_months(self) -> float:
        return 12.0 / self.steps_per_year

    @property
    def steps(self) -> int:
        return max(1, round(self.months / self.step_months))

    def with_values(self, assignments: Mapping[str, Any]) -> Scenario:
        """Return a copy with dotted parameters changed, e.g. ``{"defences.inspection_monthly": 0.2}``.

        ``attacks.N.field`` changes attack ``N`` (counted from 0).
        """
        scenario = self
        for path, value in assignments.items():
            scenario = _assign(scenario, path.split("."), value, path)
        return scenario

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build a scenario from plain data (parsed TOML or JSON), rejecting unknown keys."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown scenario key(s) {', '.join(unknown)}; use {sorted(known)}")
        kwargs: dict[str, Any] = {}
        if "kind" in data:
            kwargs["kind"] = _enum(AgreementKind, data["kind"], "kind")
        for name, section_type in (("fleet", Fleet), ("defences", Defences), ("race", RaceSettings)):
            if name in data:
                kwargs[name] = _build(section_type, data[name], name)
        if "attacks" in data:
            raw = data["attacks"]
            if not isinstance(raw, list):
                raise InputError("attacks must be a list of tables ([[attacks]] in TOML)")
            attacks = []
            for index, item in enumerate(raw):
                if not isinstance(item, Mapping):
                    raise InputError(f"attacks[{index}] must be a table")
                entry = dict(item)
                entry["kind"] = _enum(AttackKind, entry.get("kind"), f"attacks[{index}].kind")
                attacks.append(_build(Attack, entry, f"attacks[{index}]"))
            kwargs["attacks"] = tuple(attacks)
        for name in ("months", "steps_per_year"):
            if name in data:
                kwargs[name] = data[name]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "fleet": _plain(self.fleet),
            "attacks": [_plain(attack) for attack in self.attacks],
            "defences": _plain(self.defences),
            "race": _plain(self.race),
            "months": self.months,
            "steps_per_year": self.steps_per_year,
        }


def _plain(item: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for entry in fields(item):
        value = getattr(item, entry.name)
        result[entry.name] = value.value if isinstance(value, enum.Enum) else value
    return result


def _enum(enum_type: type[enum.StrEnum], value: Any, where: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum_type)
        raise InputError(f"{where} is {value!r}; use one of {choices}") from None


def _build(section_type: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InputError(f"{where} must be a table of parameters")
    known = {item.name for item in fields(section_type)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown {where} key(s) {', '.join(unknown)}; use {sorted(known)}")
    try:
        return section_type(**data)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from None


def _assign(item: Any, parts: list[str], value: Any, path: str) -> Any:
    head, rest = parts[0], parts[1:]
    if isinstance(item, tuple):
        try:
            index = int(head)
            child = item[index]
        except (ValueError, IndexError):
            raise InputError(f"{path}: {head!r} is not a valid attack index") from None
        items = list(item)
        items[index] = _assign(child, rest, value, path) if rest else value
        return tuple(items)
    names = {entry.name for entry in fields(item)}
    if head not in names:
        raise InputError(f"{path}: unknown parameter {head!r}; use one of {sorted(names)}")
    if rest:
        return replace(item, **{head: _assign(getattr(item, head), rest, value, path)})
    current = getattr(item, head)
    if isinstance(current, enum.Enum):
        value = _enum(type(current), value, path)  # type: ignore[arg-type]
    elif isinstance(current, int) and not isinstance(current, bool) and isinstance(value, float):
        if value != int(value):
            raise InputError(f"{path} must be a whole number, got {value!r}")
        value = int(value)
    return replace(item, **{head: value})
