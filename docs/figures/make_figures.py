"""Regenerate the figures of docs/analysis.md: python docs/figures/make_figures.py."""

from __future__ import annotations

import json
from pathlib import Path

from flexheg.analysis._scenario import Attack, AttackKind, Defences, Fleet, Scenario
from flexheg.analysis.plots import (
    detection_time_figure,
    stability_figure,
    stability_region_figure,
    sweep_heatmap,
)
from flexheg.analysis.race import AgreementKind
from flexheg.analysis.simulation import run_replications, summarize
from flexheg.analysis.sweep import run_sweep

HERE = Path(__file__).parent
FLEET = Fleet(chips=200_000, datacenters=1_000, defector_share=0.5)
ATTACKS = {
    "diversion of 20 chips, location spoofed": Attack(
        AttackKind.DIVERSION, 20, spoof_fraction=1.0, bypass_fraction=1.0
    ),
    "tampering with 200 chips in place": Attack(AttackKind.TAMPERING, 200, ramp_months=6),
    "2,000 chips reported lost over 24 months": Attack(AttackKind.MISSING, 2_000, ramp_months=24),
    "stockpile of 20,000 unregistered chips": Attack(AttackKind.STOCKPILE, 20_000, relative_performance=0.3),
}


def main() -> None:
    stability_figure(HERE / "stability-thresholds")
    stability_region_figure(HERE / "stability-regions")

    runs = {}
    summaries = {}
    for label, attack in ATTACKS.items():
        scenario = Scenario(fleet=FLEET, attacks=(attack,), months=36)
        runs[label] = run_replications(scenario, 300, seed=2025)
        summaries[label] = summarize(scenario, runs[label]).to_dict()
    detection_time_figure(HERE / "detection-times", runs, horizon_months=36)

    # A covert program of 2,000 tampered chips; how fast inspections find it and how long the
    # other side needs to respond decide P(W|D) under a ruleset.
    base = Scenario(
        kind=AgreementKind.RULESET,
        fleet=FLEET,
        attacks=(Attack(AttackKind.TAMPERING, 2_000, ramp_months=3),),
        defences=Defences(inspection_chip_fraction=0.01, tamper_detect_probability=0.2),
        months=36,
    )
    cells = run_sweep(
        base,
        {
            "defences.inspection_monthly": [0.0, 0.01, 0.03, 0.1],
            "race.response_months_ruleset": [1.0, 6.0, 12.0, 24.0],
        },
        replications=100,
        seed=2025,
        workers=2,
    )
    sweep_heatmap(
        HERE / "sweep-ruleset",
        cells,
        x="defences.inspection_monthly",
        y="race.response_months_ruleset",
        metric="mean_p_win_given_defect",
    )
    data = {"detection": summaries, "sweep": [cell.to_dict() for cell in cells]}
    (HERE / "figures.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
