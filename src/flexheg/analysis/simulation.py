"""Monte Carlo simulation of a fleet under an agreement, with attacks against layered defences.

One replication runs in time steps (monthly or weekly) and ends at the first detection or at the
horizon. Its outputs are the detection time, the layer that detected, the compute the defector
gained while hidden, the lead after the other side has responded, and ``P(W|D)`` from the race
model of :mod:`flexheg.analysis.race`.

How the vectorised engine works:

1. Setup draws per-chip values once: each registered chip's data center and failure step (a
   geometric draw with the per-step failure rate, equivalent to a draw in every step), and for
   each attacked chip its join step and its bypass and spoof flags.
2. Each step draws which data centers are inspected and then checks only the attacked chips and
   their data centers, because an honest chip cannot trigger a detection. The loss audit uses the
   per-step failure counts of the defector's chips, which setup takes from the per-chip draws.
3. Compute gained follows from each attacked chip's yielding interval (join, failure, license
   lock), so it is summed once at the end instead of in every step.

:func:`flexheg.analysis._reference.simulate_reference` runs the same model with a plain loop
over every chip in every step. The tests check that both agree in distribution, and the benchmark
compares their speed.

Assumptions: layers detect independently; any one detection ends the hidden phase; inspections of
different data centers and months are independent; the defender acts on every detection.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from flexheg.analysis._scenario import Attack, AttackKind, RaceSettings, Scenario
from flexheg.analysis.detection import rate_per_step
from flexheg.analysis.race import AgreementKind, RaceModel
from flexheg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "LAYERS",
    "Replication",
    "Summary",
    "run_replications",
    "simulate",
    "summarize",
]

# Detection layers in the order used to name the detecting layer when several fire in one step.
LAYERS = (
    "production",
    "census",
    "inspection",
    "location",
    "license",
    "loss-audit",
    "intelligence",
)
_NEVER = np.iinfo(np.int64).max

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Replication:
    """Outcome of one replication.

    Attributes:
        detected: whether any layer detected the defection within the horizon.
        detection_month: end of the detecting step in months from the start, NaN if undetected.
        months_to_detection: months from the first attack's start to detection, NaN if undetected.
        layer: the detecting layer (the first of :data:`LAYERS` that fired), "" if undetected.
        compute_gained: chip-months of forbidden compute before detection (or to the horizon).
        lead: chip-months ahead once the other side has responded.
        p_win_given_defect: ``P(W|D)`` from the race model.
    """

    detected: bool
    detection_month: float
    months_to_detection: float
    layer: str
    compute_gained: float
    lead: float
    p_win_given_defect: float


@dataclass
class _Rates:
    """Per-step probabilities and check schedules derived from a scenario."""

    fail: float
    inspection: float
    loss_z: float | None
    location_steps: BoolArray
    license_steps: BoolArray
    intelligence: list[float]

    @classmethod
    def of(cls, scenario: Scenario) -> _Rates:
        steps_per_month = 1.0 / scenario.step_months
        defences = scenario.defences
        alpha = defences.loss_audit_alpha
        return cls(
            fail=rate_per_step(scenario.fleet.annual_failure_rate, scenario.steps_per_year),
            inspection=rate_per_step(defences.inspection_monthly, steps_per_month),
            loss_z=NormalDist().inv_cdf(1.0 - alpha) if 0.0 < alpha < 1.0 else None,
            location_steps=_schedule(scenario, defences.location_check_months),
            license_steps=_schedule(scenario, defences.license_months),
            intelligence=[
                rate_per_step(
                    defences.intelligence_monthly
                    if attack.intelligence_monthly is None
                    else attack.intelligence_monthly,
                    steps_per_month,
                )
                for attack in scenario.attacks
            ],
        )


def _schedule(scenario: Scenario, interval_months: float) -> BoolArray:
    """Mark the steps at whose end a periodic check runs (none when the interval is 0)."""
    steps = scenario.steps
    if interval_months <= 0.0:
        return np.zeros(steps, dtype=np.bool_)
    ends = (np.arange(steps) + 1) * scenario.step_months
    # A check runs in the step in which a multiple of the interval falls.
    counts = np.floor(ends / interval_months + 1e-9)
    previous = np.concatenate(([0.0], counts[:-1]))
    schedule: BoolArray = counts > previous
    return schedule


def _next_scheduled(schedule: BoolArray, steps: IntArray) -> IntArray:
    """For each step, the first scheduled step at or after it (``_NEVER`` if none)."""
    scheduled = np.flatnonzero(schedule)
    if scheduled.size == 0:
        return np.full(steps.shape, _NEVER, dtype=np.int64)
    index = np.searchsorted(scheduled, steps, side="left")
    padded = np.concatenate((scheduled, [_NEVER])).astype(np.int64)
    result: IntArray = padded[index]
    return result


@dataclass
class _Attacked:
    """Per-chip arrays for every attacked chip, concatenated over all attacks."""

    attack: IntArray
    kind: list[AttackKind]
    kind_code: IntArray
    datacenter: IntArray
    join: IntArray
    fail: IntArray
    bypass: BoolArray
    spoof: BoolArray
    weight: FloatArray
    produced_found: BoolArray
    deployed: BoolArray


_KIND_CODES = {kind: code for code, kind in enumerate(AttackKind)}


def _join_steps(attack: Attack, scenario: Scenario) -> IntArray:
    start = attack.start_month / scenario.step_months
    ramp = attack.ramp_months / scenario.step_months
    offsets = np.arange(attack.chips, dtype=np.float64) * (ramp / attack.chips)
    joins: IntArray = np.floor(start + offsets + 1e-9).astype(np.int64)
    return np.minimum(joins, scenario.steps - 1)


def _setup(scenario: Scenario, rates: _Rates, rng: np.random.Generator) -> tuple[_Attacked, IntArray, int]:
    """Draw the fleet and the attacked chips; return them, the defector's loss counts and size."""
    fleet = scenario.fleet
    steps = scenario.steps
    chip_datacenter = rng.integers(0, fleet.datacenters, size=fleet.chips, dtype=np.int32)
    if rates.fail > 0.0:
        chip_fail = rng.geometric(rates.fail, size=fleet.chips)
    else:
        chip_fail = np.full(fleet.chips, _NEVER, dtype=np.int64)
    defector_mask = chip_datacenter < fleet.defector_datacenters
    defector_chips = int(np.count_nonzero(defector_mask))
    # A chip with failure draw g is alive in steps 0..g-1 and its failure is reported in step g-1.
    defector_failures = np.bincount(np.minimum(chip_fail[defector_mask] - 1, steps), minlength=steps + 1)[
        :steps
    ].astype(np.int64)
    available = defector_mask.copy()

    parts: dict[str, list[Any]] = {name: [] for name in _Attacked.__dataclass_fields__}
    for index, attack in enumerate(scenario.attacks):
        joins = _join_steps(attack, scenario)
        count = attack.chips
        found = np.zeros(count, dtype=np.bool_)
        deployed = np.ones(count, dtype=np.bool_)
        if attack.kind in (AttackKind.DIVERSION, AttackKind.TAMPERING, AttackKind.MISSING):
            candidates = np.flatnonzero(available)
            if candidates.size < count:
                raise InputError(
                    f"attack {index} ({attack.kind.value}) needs {count} of the defector's chips "
                    f"but only {candidates.size} are free; lower attacks.{index}.chips or raise "
                    "fleet.chips"
                )
            chosen = rng.choice(candidates, size=count, replace=False)
            available[chosen] = False
            datacenter = chip_datacenter[chosen].astype(np.int64)
            fail = chip_fail[chosen].astype(np.int64)
        else:
            fail = joins + _failure_draws(rates.fail, count, rng)
            if attack.kind is AttackKind.COMPROMISED_BATCH:
                datacenter = rng.integers(0, fleet.defector_datacenters, size=count)
                sampled = rng.random(count) < scenario.defences.production_sampling_rate
                found = sampled & (rng.random(count) < scenario.defences.production_detect_probability)
                # Sampled chips are destroyed in testing, so only the rest are deployed.
                deployed = ~sampled
            else:
                datacenter = np.full(count, -1, dtype=np.int64)
        parts["attack"].append(np.full(count, index, dtype=np.int64))
        parts["kind"].append([attack.kind] * count)
        parts["kind_code"].append(np.full(count, _KIND_CODES[attack.kind], dtype=np.int64))
        parts["datacenter"].append(datacenter)
        parts["join"].append(joins)
        parts["fail"].append(fail)
        parts["bypass"].append(rng.random(count) < attack.bypass_fraction)
        parts["spoof"].append(rng.random(count) < attack.spoof_fraction)
        weight = attack.relative_performance if attack.kind is AttackKind.STOCKPILE else 1.0
        parts["weight"].append(np.full(count, weight, dtype=np.float64))
        parts["produced_found"].append(found)
        parts["deployed"].append(deployed)

    attacked = _Attacked(
        attack=np.concatenate(parts["attack"]),
        kind=[kind for chunk in parts["kind"] for kind in chunk],
        kind_code=np.concatenate(parts["kind_code"]),
        datacenter=np.concatenate(parts["datacenter"]),
        join=np.concatenate(parts["join"]),
        fail=np.concatenate(parts["fail"]),
        bypass=np.concatenate(parts["bypass"]),
        spoof=np.concatenate(parts["spoof"]),
        weight=np.concatenate(parts["weight"]),
        produced_found=np.concatenate(parts["produced_found"]),
        deployed=np.concatenate(parts["deployed"]),
    )
    return attacked, defector_failures, defector_chips


def _failure_draws(rate: float, count: int, rng: np.random.Generator) -> IntArray:
    if rate <= 0.0:
        return np.full(count, _NEVER // 2, dtype=np.int64)
    draws: IntArray = rng.geometric(rate, size=count).astype(np.int64)
    return draws


def _yield_intervals(
    scenario: Scenario, rates: _Rates, attacked: _Attacked
) -> tuple[IntArray, IntArray, FloatArray]:
    """Return each attacked chip's first and past-the-end yielding step and its weight."""
    code = attacked.kind_code
    diversion = code == _KIND_CODES[AttackKind.DIVERSION]
    missing = code == _KIND_CODES[AttackKind.MISSING]
    start = attacked.join.copy()
    end = np.minimum(attacked.fail, scenario.steps)
    weight = attacked.weight * attacked.deployed

    # A license ends at the first renewal at or after the chip stops renewing. From then on the
    # chip is locked, unless its guarantees were defeated.
    license_end = _next_scheduled(rates.license_steps, attacked.join)
    lockable = ((diversion & ~attacked.spoof) | missing) & ~attacked.bypass
    locked_end = np.where(license_end == _NEVER, _NEVER, license_end + 1)
    end = np.where(lockable, np.minimum(end, locked_end), end)

    if scenario.kind is AgreementKind.RULESET:
        # The rules still hold on a diverted or missing chip whose guarantees were not defeated.
        weight = np.where((diversion | missing) & ~attacked.bypass, 0.0, weight)
    return start, end, weight


def _gained(start: IntArray, end: IntArray, weight: FloatArray, last_step: int, months: float) -> float:
    steps = np.clip(np.minimum(end, last_step + 1) - start, 0, None)
    return float(np.dot(steps.astype(np.float64), weight) * months)


def _reported_losses(scenario: Scenario, attacked: _Attacked, defector_failures: IntArray) -> IntArray:
    """Count the losses the defector reports in each step: honest failures plus false claims.

    A diverted or missing chip that fails after it left the fleet is not reported again.
    """
    steps = scenario.steps
    code = attacked.kind_code
    gone = (code == _KIND_CODES[AttackKind.DIVERSION]) | (code == _KIND_CODES[AttackKind.MISSING])
    unreported = gone & (attacked.fail - 1 >= attacked.join) & (attacked.fail - 1 < steps)
    hidden = np.bincount(attacked.fail[unreported] - 1, minlength=steps)[:steps]
    missing = code == _KIND_CODES[AttackKind.MISSING]
    claimed = missing & (attacked.fail > attacked.join)
    claims = np.bincount(attacked.join[claimed], minlength=steps)[:steps]
    reported: IntArray = (defector_failures - hidden + claims).astype(np.int64)
    return reported


def simulate(scenario: Scenario, rng: np.random.Generator) -> Replication:
    """Run one replication with the vectorised engine."""
    rates = _Rates.of(scenario)
    attacked, defector_failures, defector_chips = _setup(scenario, rates, rng)
    defences = scenario.defences
    fleet = scenario.fleet
    code = attacked.kind_code
    diversion = code == _KIND_CODES[AttackKind.DIVERSION]
    missing = code == _KIND_CODES[AttackKind.MISSING]
    in_place = (
        (code == _KIND_CODES[AttackKind.TAMPERING]) | (code == _KIND_CODES[AttackKind.COMPROMISED_BATCH])
    ) & attacked.deployed
    in_place_detect = (
        np.where(
            code == _KIND_CODES[AttackKind.TAMPERING],
            defences.tamper_detect_probability,
            defences.backdoor_detect_probability,
        )
        * defences.inspection_chip_fraction
    )

    production_step = int(attacked.join[attacked.produced_found].min(initial=_NEVER))
    diverted_datacenters = np.unique(attacked.datacenter[diversion])
    first_missing = np.full(fleet.datacenters, _NEVER, dtype=np.int64)
    np.minimum.at(first_missing, attacked.datacenter[diversion], attacked.join[diversion])
    first_missing_sites = first_missing[diverted_datacenters]
    attack_starts = [int(attacked.join[attacked.attack == i].min()) for i in range(len(scenario.attacks))]
    reported = _reported_losses(scenario, attacked, defector_failures)
    claims = np.bincount(attacked.join[missing & (attacked.fail > attacked.join)], minlength=scenario.steps)
    # The defender expects failures among the chips it still believes registered and alive.
    believed_alive = defector_chips - np.concatenate(([0], np.cumsum(reported)[:-1]))

    detected_step = -1
    layer = ""
    for step in range(scenario.steps):
        fired = _check_step(
            step,
            scenario,
            rates,
            rng,
            attacked=attacked,
            diversion=diversion,
            in_place=in_place,
            in_place_detect=in_place_detect,
            production_step=production_step,
            diverted_datacenters=diverted_datacenters,
            first_missing_sites=first_missing_sites,
            loss_count=int(reported[step]),
            loss_expected=float(believed_alive[step]) * rates.fail,
            missing_now=int(claims[step]),
            attack_starts=attack_starts,
        )
        if fired:
            detected_step, layer = step, fired
            break

    return _finish(
        scenario,
        rates=rates,
        attacked=attacked,
        detected_step=detected_step,
        layer=layer,
        defector_chips=defector_chips,
    )


def _check_step(
    step: int,
    scenario: Scenario,
    rates: _Rates,
    rng: np.random.Generator,
    *,
    attacked: _Attacked,
    diversion: BoolArray,
    in_place: BoolArray,
    in_place_detect: FloatArray,
    production_step: int,
    diverted_datacenters: IntArray,
    first_missing_sites: IntArray,
    loss_count: int,
    loss_expected: float,
    missing_now: int,
    attack_starts: list[int],
) -> str:
    """Run every defence layer for one step; return the first layer that detected, or ""."""
    defences = scenario.defences
    fired: list[str] = []
    joined = attacked.join <= step
    alive = attacked.fail > step

    if production_step == step:
        fired.append("production")

    inspected = rng.random(scenario.fleet.datacenters) < rates.inspection
    if diverted_datacenters.size:
        hit = inspected[diverted_datacenters] & (first_missing_sites <= step)
        if np.any(rng.random(int(np.count_nonzero(hit))) < defences.census_detect_probability):
            fired.append("census")
    examined = in_place & joined & alive
    examined &= inspected[np.where(examined, attacked.datacenter, 0)]
    if np.any(rng.random(int(np.count_nonzero(examined))) < in_place_detect[examined]):
        fired.append("inspection")

    exposed = diversion & joined & alive & ~attacked.spoof
    if rates.location_steps[step] and np.any(
        rng.random(int(np.count_nonzero(exposed))) < defences.location_detect_probability
    ):
        fired.append("location")
    if rates.license_steps[step] and np.any(
        rng.random(int(np.count_nonzero(exposed))) < defences.renewal_detect_probability
    ):
        fired.append("license")

    if rates.loss_z is not None and missing_now > 0:
        threshold = loss_expected + rates.loss_z * math.sqrt(loss_expected * (1.0 - rates.fail))
        flagged = loss_count > threshold
        if flagged and rng.random() < defences.loss_investigation_detect_probability:
            fired.append("loss-audit")

    for start, probability in zip(attack_starts, rates.intelligence, strict=True):
        if start <= step and rng.random() < probability:
            fired.append("intelligence")
            break

    return min(fired, key=LAYERS.index) if fired else ""


def _finish(
    scenario: Scenario,
    *,
    rates: _Rates,
    attacked: _Attacked,
    detected_step: int,
    layer: str,
    defector_chips: int,
) -> Replication:
    start, end, weight = _yield_intervals(scenario, rates, attacked)
    last = detected_step if detected_step >= 0 else scenario.steps - 1
    gained = _gained(start, end, weight, last, scenario.step_months)
    yielding = float(np.dot((start <= last) & (end > last), weight))
    first_start = float(attacked.join.min())
    return _outcome(
        scenario,
        detected_step=detected_step,
        layer=layer,
        gained=gained,
        yielding=yielding,
        first_start_step=first_start,
        defector_chips=defector_chips,
    )


def _outcome(
    scenario: Scenario,
    *,
    detected_step: int,
    layer: str,
    gained: float,
    yielding: float,
    first_start_step: float,
    defector_chips: int,
) -> Replication:
    """Turn the hidden phase into a lead and ``P(W|D)`` with the scenario's race settings."""
    detected = detected_step >= 0
    detection_month = (detected_step + 1) * scenario.step_months if detected else math.nan
    race = scenario.race
    lead = gained
    if detected:
        # Chips still yielding at detection keep yielding while the other side responds.
        if scenario.kind is AgreementKind.VERIFICATION:
            lead += defector_chips * race.response_months_verification
        else:
            unlocked = race.ruleset_unlock_fraction * max(0.0, defector_chips - yielding)
            lead += (yielding + unlocked) * race.response_months_ruleset
    model = RaceModel(race.baseline_months * max(defector_chips, 1), race.decisiveness)
    first_start = first_start_step * scenario.step_months
    return Replication(
        detected=detected,
        detection_month=detection_month,
        months_to_detection=detection_month - first_start if detected else math.nan,
        layer=layer,
        compute_gained=gained,
        lead=lead,
        p_win_given_defect=model.p_win(lead),
    )


def run_replications(
    scenario: Scenario,
    replications: int,
    seed: int | np.random.SeedSequence,
    *,
    reference: bool = False,
) -> list[Replication]:
    """Run ``replications`` replications, each from its own child of the seed sequence.

    The same seed gives the same results whatever the machine or the number of workers.
    """
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 1:
        raise InputError(f"replications must be a positive integer, got {replications!r}")
    from flexheg.analysis._reference import simulate_reference  # noqa: PLC0415

    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    engine = simulate_reference if reference else simulate
    return [engine(scenario, np.random.default_rng(child)) for child in root.spawn(replications)]


@dataclass(frozen=True)
class Summary:
    """Distribution summary over replications, with the stability verdict on mean ``P(W|D)``.

    The defector's expected payoff is linear in ``P(W|D)``, so the mean over replications is the
    value that enters the stability condition.
    """

    replications: int
    p_detected: float
    p_detected_stderr: float
    months_to_detection_quantiles: dict[str, float]
    mean_compute_gained: float
    mean_lead: float
    mean_p_win_given_defect: float
    threshold: float
    stable: bool
    layers: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "replications": self.replications,
            "p_detected": self.p_detected,
            "p_detected_stderr": self.p_detected_stderr,
            "months_to_detection_quantiles": self.months_to_detection_quantiles,
            "mean_compute_gained_chip_months": self.mean_compute_gained,
            "mean_lead_chip_months": self.mean_lead,
            "mean_p_win_given_defect": self.mean_p_win_given_defect,
            "p_win_given_defect_threshold": self.threshold,
            "stable": self.stable,
            "detections_by_layer": self.layers,
        }


def summarize(scenario: Scenario, results: list[Replication]) -> Summary:
    """Summarise replications and apply the stability model with the scenario's race settings."""
    from flexheg.analysis.stability import p_win_threshold  # noqa: PLC0415

    if not results:
        raise InputError("no replications to summarise; run at least one")
    detected = np.array([r.detected for r in results])
    times = np.array([r.months_to_detection for r in results if r.detected])
    p_detected = float(detected.mean())
    quantiles = {
        f"p{int(q * 100)}": float(np.quantile(times, q)) if times.size else math.nan for q in (0.1, 0.5, 0.9)
    }
    mean_p_win = float(np.mean([r.p_win_given_defect for r in results]))
    race: RaceSettings = scenario.race
    threshold = p_win_threshold(race.u_win, race.p_doom)
    layers = {name: sum(1 for r in results if r.layer == name) for name in LAYERS}
    return Summary(
        replications=len(results),
        p_detected=p_detected,
        p_detected_stderr=math.sqrt(p_detected * (1.0 - p_detected) / len(results)),
        months_to_detection_quantiles=quantiles,
        mean_compute_gained=float(np.mean([r.compute_gained for r in results])),
        mean_lead=float(np.mean([r.lead for r in results])),
        mean_p_win_given_defect=mean_p_win,
        threshold=threshold,
        stable=mean_p_win < threshold,
        layers=layers,
    )
