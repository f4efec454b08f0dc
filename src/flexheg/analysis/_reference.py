"""The fleet model as a plain loop over every chip in every step.

This is the same model as :func:`flexheg.analysis.simulation.simulate`, written for clarity rather
than speed: every registered chip draws its failure in every step and every attacked chip is
visited in every step. It serves small fleets, as a cross-check in tests and as the benchmark
baseline.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from flexheg.analysis._scenario import Attack, AttackKind, Scenario
from flexheg.analysis.race import AgreementKind
from flexheg.analysis.simulation import LAYERS, Replication, _join_steps, _outcome, _Rates
from flexheg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["simulate_reference"]

_REGISTERED = (AttackKind.DIVERSION, AttackKind.TAMPERING, AttackKind.MISSING)


@dataclass
class _Chip:
    """One attacked chip; ``registered`` is its index in the fleet, or None for new chips."""

    attack: int
    kind: AttackKind
    join: int
    weight: float
    registered: int | None = None
    datacenter: int = -1
    alive: bool = True
    deployed: bool = True
    found: bool = False
    locked: bool = False
    bypass: bool = False
    spoof: bool = False


class _Run:
    """State of one reference replication."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator) -> None:
        self.scenario = scenario
        self.rng = rng
        self.rates = _Rates.of(scenario)
        fleet = scenario.fleet
        self.datacenter = [int(rng.integers(0, fleet.datacenters)) for _ in range(fleet.chips)]
        self.alive = [True] * fleet.chips
        self.defector = [dc < fleet.defector_datacenters for dc in self.datacenter]
        self.defector_chips = sum(self.defector)
        self.gone: set[int] = set()
        self.chips: list[_Chip] = []
        free = [chip for chip in range(fleet.chips) if self.defector[chip]]
        for index, attack in enumerate(scenario.attacks):
            free = self._add_attack(index, attack, free)

    def _add_attack(self, index: int, attack: Attack, free: list[int]) -> list[int]:
        rng = self.rng
        defences = self.scenario.defences
        joins = _join_steps(attack, self.scenario)
        chosen: list[int] = []
        if attack.kind in _REGISTERED:
            if len(free) < attack.chips:
                raise InputError(
                    f"attack {index} ({attack.kind.value}) needs {attack.chips} of the defector's "
                    f"chips but only {len(free)} are free; lower attacks.{index}.chips"
                )
            picks = rng.choice(len(free), size=attack.chips, replace=False)
            chosen = [free[int(pick)] for pick in picks]
            taken = set(chosen)
            free = [chip for chip in free if chip not in taken]
        weight = attack.relative_performance if attack.kind is AttackKind.STOCKPILE else 1.0
        for number in range(attack.chips):
            chip = _Chip(attack=index, kind=attack.kind, join=int(joins[number]), weight=weight)
            if attack.kind in _REGISTERED:
                chip.registered = chosen[number]
                chip.datacenter = self.datacenter[chosen[number]]
            elif attack.kind is AttackKind.COMPROMISED_BATCH:
                chip.datacenter = int(rng.integers(0, self.scenario.fleet.defector_datacenters))
                if rng.random() < defences.production_sampling_rate:
                    chip.deployed = False
                    chip.found = bool(rng.random() < defences.production_detect_probability)
            chip.bypass = bool(rng.random() < attack.bypass_fraction)
            chip.spoof = bool(rng.random() < attack.spoof_fraction)
            self.chips.append(chip)
        return free

    def _is_alive(self, chip: _Chip) -> bool:
        return chip.alive if chip.registered is None else self.alive[chip.registered]

    def visit_attacked(self, step: int, inspected: list[bool], fired: list[str]) -> tuple[float, int]:
        """Yield compute and run the per-chip checks; return the yielding weight and claims."""
        scenario, rates, defences = self.scenario, self.rates, self.scenario.defences
        yielding = 0.0
        claims = 0
        missing_sites: set[int] = set()
        for chip in self.chips:
            if chip.join > step:
                continue
            alive_now = self._is_alive(chip)
            if chip.kind is AttackKind.COMPROMISED_BATCH and chip.join == step and chip.found:
                fired.append("production")
            if chip.kind in (AttackKind.DIVERSION, AttackKind.MISSING) and chip.registered is not None:
                if chip.join == step and alive_now:
                    self.gone.add(chip.registered)
                    claims += chip.kind is AttackKind.MISSING
                if chip.kind is AttackKind.DIVERSION:
                    missing_sites.add(chip.datacenter)
            if not alive_now or not chip.deployed:
                continue

            weight = 0.0 if chip.locked else chip.weight
            held_by_rules = chip.kind in (AttackKind.DIVERSION, AttackKind.MISSING)
            if scenario.kind is AgreementKind.RULESET and held_by_rules and not chip.bypass:
                weight = 0.0
            yielding += weight

            if (
                chip.kind in (AttackKind.TAMPERING, AttackKind.COMPROMISED_BATCH)
                and inspected[chip.datacenter]
            ):
                detect = (
                    defences.tamper_detect_probability
                    if chip.kind is AttackKind.TAMPERING
                    else defences.backdoor_detect_probability
                )
                if self.rng.random() < detect * defences.inspection_chip_fraction:
                    fired.append("inspection")
            exposed = chip.kind is AttackKind.DIVERSION and not chip.spoof
            location = exposed and rates.location_steps[step]
            if location and self.rng.random() < defences.location_detect_probability:
                fired.append("location")
            renewal = exposed and rates.license_steps[step]
            if renewal and self.rng.random() < defences.renewal_detect_probability:
                fired.append("license")
            lockable = (exposed or chip.kind is AttackKind.MISSING) and not chip.bypass
            if lockable and rates.license_steps[step]:
                chip.locked = True

        for site in sorted(missing_sites):
            if inspected[site] and self.rng.random() < defences.census_detect_probability:
                fired.append("census")
        return yielding, claims

    def fail_chips(self, step: int) -> int:
        """Draw end-of-step failures for every chip; return the defector's reported failures."""
        reported = 0
        for chip in range(self.scenario.fleet.chips):
            if self.alive[chip] and self.rng.random() < self.rates.fail:
                self.alive[chip] = False
                if self.defector[chip] and chip not in self.gone:
                    reported += 1
        for attacked in self.chips:
            new_chip = attacked.registered is None and attacked.join <= step
            if new_chip and attacked.alive and self.rng.random() < self.rates.fail:
                attacked.alive = False
        return reported


def simulate_reference(scenario: Scenario, rng: np.random.Generator) -> Replication:
    """Run one replication of the fleet model with a per-chip, per-step loop."""
    run = _Run(scenario, rng)
    rates = run.rates
    defences = scenario.defences
    gained = 0.0
    yielding = 0.0
    believed_alive = run.defector_chips
    detected_step = -1
    layer = ""
    for step in range(scenario.steps):
        fired: list[str] = []
        inspected = [bool(rng.random() < rates.inspection) for _ in range(scenario.fleet.datacenters)]
        yielding, claims = run.visit_attacked(step, inspected, fired)
        gained += yielding * scenario.step_months
        reported = claims + run.fail_chips(step)

        if rates.loss_z is not None and claims > 0:
            expected = believed_alive * rates.fail
            threshold = expected + rates.loss_z * math.sqrt(expected * (1.0 - rates.fail))
            investigated = rng.random() < defences.loss_investigation_detect_probability
            if reported > threshold and investigated:
                fired.append("loss-audit")
        believed_alive -= reported

        for index, probability in enumerate(rates.intelligence):
            started = any(chip.attack == index and chip.join <= step for chip in run.chips)
            if started and rng.random() < probability:
                fired.append("intelligence")
                break

        if fired:
            detected_step, layer = step, min(fired, key=LAYERS.index)
            break

    return _outcome(
        scenario,
        detected_step=detected_step,
        layer=layer,
        gained=gained,
        yielding=yielding,
        first_start_step=float(min(chip.join for chip in run.chips)),
        defector_chips=run.defector_chips,
    )
