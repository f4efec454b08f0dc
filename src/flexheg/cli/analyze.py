"""``flexheg analyze``: stability thresholds, detection odds, fleet simulation and sweeps."""

from __future__ import annotations

import csv
import json as json_module
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.errors import InputError

if TYPE_CHECKING:
    from flexheg.analysis._scenario import Scenario

app = typer.Typer(no_args_is_help=True)

UWin = Annotated[float, typer.Option("--u-win", help="U(W): value of winning relative to U(C) = 1.")]
PDoom = Annotated[float, typer.Option("--p-doom", help="P(doom): probability of catastrophe.")]
ULose = Annotated[
    float, typer.Option("--u-lose", help="Value of losing the race (0: as bad as catastrophe).")
]
OutDir = Annotated[
    Path | None, typer.Option("--out", help="Directory for PNG/SVG figures and CSV/JSON data.")
]


@app.command("stability")
@handle_errors
def stability_command(
    u_win: UWin = 1.5,
    p_doom: PDoom = 0.1,
    p_win: Annotated[
        float | None, typer.Option("--p-win", help="P(W|D) to judge; omit for the threshold only.")
    ] = None,
    u_lose: ULose = 0.0,
    u_coop: Annotated[float, typer.Option("--u-coop", help="U(C), the value of the treaty.")] = 1.0,
    out: OutDir = None,
    json: JsonOption = False,
) -> None:
    """Print the P(W|D) threshold; with --out, also draw the threshold curves and regions."""
    from flexheg.analysis.stability import analyze, round_threshold  # noqa: PLC0415

    result = analyze(u_win, p_doom, p_win, u_lose=u_lose, u_coop=u_coop)
    document: dict[str, Any] = {"ok": True, **result.to_dict()}
    if out is not None:
        from flexheg.analysis.plots import stability_figure, stability_region_figure  # noqa: PLC0415

        paths = stability_figure(out / "stability-thresholds", u_lose=u_lose)
        paths += stability_region_figure(out / "stability-regions", u_lose=u_lose)
        document["files"] = [str(path) for path in paths]

    lines = [
        f"P(W|D) threshold: {round_threshold(result.threshold)} "
        f"(exact {result.threshold:.6g}); cooperation is stable when P(W|D) is below it",
        f"stable for any P(W|D) when P(doom) > {result.p_doom_always_stable:.6g}"
        f" (now: {'yes' if result.always_stable else 'no'})",
    ]
    if result.stable is not None:
        verdict = "stable" if result.stable else "NOT stable"
        lines.append(f"P(W|D) = {p_win:g}: defect payoff {result.defect_payoff:.4f} -> {verdict}")
    lines += [f"wrote {path}" for path in document.get("files", [])]
    emit(document, as_json=json, text="\n".join(lines))


@app.command("entry")
@handle_errors
def entry_command(
    leader_p_win: Annotated[
        float, typer.Option("--leader-p-win", help="Leader's chance of winning a race now.")
    ] = 0.8,
    u_win: UWin = 1.5,
    p_doom: PDoom = 0.1,
    u_lose: ULose = 0.0,
    leader_u_coop: Annotated[
        float, typer.Option("--leader-u-coop", help="Treaty value for the leader (concessions).")
    ] = 1.0,
    json: JsonOption = False,
) -> None:
    """Check whether a leader and a laggard would both enter the treaty."""
    from flexheg.analysis.stability import Player, treaty_entry  # noqa: PLC0415

    leader = Player("leader", u_win, p_doom, leader_p_win, u_lose=u_lose, u_coop=leader_u_coop)
    laggard = Player("laggard", u_win, p_doom, 1.0 - leader_p_win, u_lose=u_lose)
    results = treaty_entry(leader, laggard)
    lines = [
        f"{r.name}: race {r.race_payoff:.4f} vs treaty {r.treaty_payoff:.4f} -> "
        + ("joins" if r.joins else f"stays out; treaty value must rise above {r.race_payoff:.4f}")
        for r in results
    ]
    emit({"ok": True, "players": [r.to_dict() for r in results]}, as_json=json, text="\n".join(lines))


@app.command("compare")
@handle_errors
def compare_command(
    defector_fleet: Annotated[float, typer.Option(help="Chips the defector owns.")] = 500_000,
    covert_chips: Annotated[float, typer.Option(help="Chips used in secret.")] = 10_000,
    detection_months: Annotated[float, typer.Option(help="Months until detection.")] = 3.0,
    response_verification: Annotated[
        float, typer.Option(help="Months for the other side to respond under verification.")
    ] = 1.0,
    response_ruleset: Annotated[
        float, typer.Option(help="Months for the other side to respond under a ruleset.")
    ] = 12.0,
    unlock_fraction: Annotated[
        float, typer.Option(help="Share of the rest of the fleet unlocked under a ruleset.")
    ] = 0.0,
    baseline_months: Annotated[
        float, typer.Option(help="Months of the defector's fleet each side brings to the race.")
    ] = 24.0,
    decisiveness: Annotated[float, typer.Option(help="Tullock contest exponent.")] = 2.0,
    u_win: UWin = 1.5,
    p_doom: PDoom = 0.1,
    json: JsonOption = False,
) -> None:
    """Compare P(W|D) and stability of verification- and ruleset-based agreements."""
    from flexheg.analysis.race import (  # noqa: PLC0415
        AgreementKind,
        DefectionScenario,
        RaceModel,
        lead_chip_months,
    )
    from flexheg.analysis.stability import is_stable, p_win_threshold  # noqa: PLC0415

    scenario = DefectionScenario(
        defector_fleet=defector_fleet,
        covert_chips=covert_chips,
        detection_months=detection_months,
        response_months_verification=response_verification,
        response_months_ruleset=response_ruleset,
        ruleset_unlock_fraction=unlock_fraction,
    )
    model = RaceModel(baseline_months * defector_fleet, decisiveness)
    threshold = p_win_threshold(u_win, p_doom)
    kinds: dict[str, Any] = {}
    for kind in AgreementKind:
        lead = lead_chip_months(kind, scenario)
        p_win = model.p_win(lead)
        kinds[kind.value] = {
            "lead_chip_months": lead,
            "p_win_given_defect": p_win,
            "stable": is_stable(u_win, p_doom, p_win),
        }
    lines = [f"P(W|D) threshold {threshold:.4f}"] + [
        f"{name}: lead {v['lead_chip_months']:.4g} chip-months, P(W|D) {v['p_win_given_defect']:.4f}"
        f" -> {'stable' if v['stable'] else 'NOT stable'}"
        for name, v in kinds.items()
    ]
    emit({"ok": True, "threshold": threshold, "kinds": kinds}, as_json=json, text="\n".join(lines))


@app.command("sampling")
@handle_errors
def sampling_command(
    rate: Annotated[float, typer.Option(help="Fraction of new chips sampled for testing.")] = 0.001,
    compromised: Annotated[int, typer.Option(help="Compromised chips in the batch.")] = 1000,
    detect_if_sampled: Annotated[
        float, typer.Option(help="Chance that testing a sampled compromised chip finds it.")
    ] = 1.0,
    json: JsonOption = False,
) -> None:
    """Print the probability that production sampling catches a compromised batch."""
    from flexheg.analysis.detection import p_batch_caught  # noqa: PLC0415

    probability = p_batch_caught(rate, compromised, detect_if_sampled)
    document = {
        "ok": True,
        "rate": rate,
        "compromised": compromised,
        "detect_if_sampled": detect_if_sampled,
        "p_caught": probability,
    }
    text = f"P(at least one of {compromised} compromised chips caught) = {probability:.4f}"
    emit(document, as_json=json, text=text)


@app.command("inspection")
@handle_errors
def inspection_command(
    rate: Annotated[float, typer.Option(help="Chance a site is inspected per period.")] = 1 / 12,
    periods: Annotated[int, typer.Option(help="Periods (e.g. months) of exposure.")] = 12,
    sites: Annotated[int, typer.Option(help="Sites from which chips were diverted.")] = 1,
    detect_if_inspected: Annotated[
        float, typer.Option(help="Chance an inspection of an affected site finds the diversion.")
    ] = 1.0,
    layer: Annotated[
        list[float] | None,
        typer.Option("--layer", help="Detection probability of another independent layer."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Print the probability that inspections (and further layers) find a diversion in time."""
    from flexheg.analysis.detection import combine_layers, p_detected_within  # noqa: PLC0415

    inspection = p_detected_within(rate, periods, sites, detect_if_inspected)
    combined = combine_layers([inspection, *(layer or [])])
    document = {"ok": True, "p_inspection": inspection, "p_combined": combined}
    text = f"inspections: {inspection:.4f}; with {len(layer or [])} more layer(s): {combined:.4f}"
    emit(document, as_json=json, text=text)


def _load_scenario(path: Path | None) -> Scenario:
    from flexheg.analysis._scenario import Attack, AttackKind, Scenario  # noqa: PLC0415

    if path is None:
        return Scenario(
            attacks=(
                Attack(AttackKind.DIVERSION, 5_000, ramp_months=6.0, spoof_fraction=0.99),
                Attack(AttackKind.TAMPERING, 5_000, ramp_months=6.0),
            )
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc.strerror}; check the path") from None
    try:
        data = json_module.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json_module.JSONDecodeError) as exc:
        raise InputError(f"{path}: invalid scenario file ({exc})") from None
    return Scenario.from_dict(data)


def _parse_set(items: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise InputError(f"--set {item!r} must look like defences.inspection_monthly=0.2")
        values[name] = _parse_value(raw, item)
    return values


def _parse_value(raw: str, where: str) -> Any:
    text = raw.strip()
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    if not text:
        raise InputError(f"{where!r} has an empty value")
    return text


@app.command("simulate")
@handle_errors
def simulate_command(
    scenario_file: Annotated[
        Path | None, typer.Option("--scenario", help="Scenario TOML or JSON file.")
    ] = None,
    set_values: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a parameter, e.g. fleet.chips=2000000 (repeatable)."),
    ] = None,
    replications: Annotated[int, typer.Option(help="Replications per agreement kind.")] = 200,
    seed: Annotated[int, typer.Option(help="Root seed.")] = 0,
    out: OutDir = None,
    json: JsonOption = False,
) -> None:
    """Simulate the scenario under both agreement kinds and feed P(W|D) into stability."""
    from flexheg.analysis.race import AgreementKind  # noqa: PLC0415
    from flexheg.analysis.simulation import run_replications, summarize  # noqa: PLC0415

    base = _load_scenario(scenario_file).with_values(_parse_set(set_values or []))
    summaries: dict[str, Any] = {}
    runs = {}
    for kind in AgreementKind:
        scenario = base.with_values({"kind": kind.value})
        results = run_replications(scenario, replications, seed)
        runs[kind.value] = results
        summaries[kind.value] = summarize(scenario, results).to_dict()

    document: dict[str, Any] = {"ok": True, "scenario": base.to_dict(), "summaries": summaries}
    if out is not None:
        document["files"] = _write_simulation(out, runs, base)
    lines = []
    for name, summary in summaries.items():
        quantiles = summary["months_to_detection_quantiles"]
        lines.append(
            f"{name}: detected {summary['p_detected']:.1%}, median {quantiles['p50']:.3g} months, "
            f"mean gain {summary['mean_compute_gained_chip_months']:.4g} chip-months, "
            f"P(W|D) {summary['mean_p_win_given_defect']:.4f} vs threshold "
            f"{summary['p_win_given_defect_threshold']:.4f} -> "
            f"{'stable' if summary['stable'] else 'NOT stable'}"
        )
    lines += [f"wrote {path}" for path in document.get("files", [])]
    emit(document, as_json=json, text="\n".join(lines))


def _write_simulation(out: Path, runs: dict[str, Any], scenario: Scenario) -> list[str]:
    from flexheg.analysis.plots import detection_time_figure  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "replications.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "kind",
                "replication",
                "detected",
                "months_to_detection",
                "layer",
                "compute_gained",
                "lead",
                "p_win_given_defect",
            ]
        )
        for kind, results in runs.items():
            for index, r in enumerate(results):
                writer.writerow(
                    [
                        kind,
                        index,
                        r.detected,
                        r.months_to_detection,
                        r.layer,
                        r.compute_gained,
                        r.lead,
                        r.p_win_given_defect,
                    ]
                )
    paths = detection_time_figure(out / "detection-times", runs, horizon_months=scenario.months)
    return [str(csv_path), *(str(path) for path in paths)]


@app.command("sweep")
@handle_errors
def sweep_command(
    param: Annotated[
        list[str],
        typer.Option("--param", help="Swept parameter, e.g. defences.inspection_monthly=0.05,0.1 (1 or 2)."),
    ],
    scenario_file: Annotated[
        Path | None, typer.Option("--scenario", help="Scenario TOML or JSON file.")
    ] = None,
    set_values: Annotated[
        list[str] | None, typer.Option("--set", help="Override a parameter (repeatable).")
    ] = None,
    replications: Annotated[int, typer.Option(help="Replications per grid cell.")] = 100,
    seed: Annotated[int, typer.Option(help="Root seed.")] = 0,
    workers: Annotated[int | None, typer.Option(help="Local worker processes (default: all CPUs).")] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786.")
    ] = None,
    metric: Annotated[str, typer.Option(help="Summary value for the heat map.")] = "mean_p_win_given_defect",
    out: OutDir = None,
    json: JsonOption = False,
) -> None:
    """Run a grid of scenarios, locally or on Dask, and draw a heat map of one metric."""
    from rich.progress import Progress  # noqa: PLC0415

    from flexheg.analysis.sweep import run_sweep  # noqa: PLC0415

    parameters: dict[str, list[Any]] = {}
    for item in param:
        name, sep, raw = item.partition("=")
        if not sep or not name or not raw:
            raise InputError(f"--param {item!r} must look like fleet.chips=1000,2000")
        parameters[name] = [_parse_value(part, item) for part in raw.split(",")]
    if len(parameters) > 2:
        raise InputError(f"sweep at most 2 parameters, got {len(parameters)}")
    base = _load_scenario(scenario_file).with_values(_parse_set(set_values or []))

    with Progress(transient=True, disable=json) as progress:
        task = progress.add_task("sweep", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        cells = run_sweep(
            base,
            parameters,
            replications=replications,
            seed=seed,
            workers=workers,
            scheduler=scheduler,
            progress=advance,
        )

    document: dict[str, Any] = {"ok": True, "cells": [cell.to_dict() for cell in cells]}
    if out is not None:
        document["files"] = _write_sweep(out, cells, list(parameters), metric)
    lines = [
        ", ".join(f"{k}={v}" for k, v in cell.values.items())
        + f": {metric} = {cell.summary.to_dict().get(metric)}"
        for cell in cells
    ]
    lines += [f"wrote {path}" for path in document.get("files", [])]
    emit(document, as_json=json, text="\n".join(lines))


def _write_sweep(out: Path, cells: list[Any], names: list[str], metric: str) -> list[str]:
    from flexheg.analysis.plots import sweep_heatmap  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "sweep.json"
    json_path.write_text(
        json_module.dumps([cell.to_dict() for cell in cells], indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    files = [str(json_path)]
    if len(names) == 2:
        files += [str(p) for p in sweep_heatmap(out / "sweep", cells, x=names[0], y=names[1], metric=metric)]
    return files
