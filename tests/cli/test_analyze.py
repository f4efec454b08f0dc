"""``flexheg analyze`` and ``flexheg chips`` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flexheg.cli.analyze import app as analyze_app
from flexheg.cli.chips import app as chips_app

runner = CliRunner()
VECTORS = Path(__file__).parent.parent / "vectors" / "chips" / "accelerators.csv"


def test_stability_threshold_text() -> None:
    result = runner.invoke(analyze_app, ["stability", "--u-win", "1.5", "--p-doom", "0.1"])
    assert result.exit_code == 0
    assert "P(W|D) threshold: 0.74" in result.output


def test_stability_json_and_figures(tmp_path: Path) -> None:
    args = ["stability", "--p-doom", "0.05", "--p-win", "0.71", "--out", str(tmp_path), "--json"]
    result = runner.invoke(analyze_app, args)
    assert result.exit_code == 0
    document = json.loads(result.output)
    assert document["p_win_given_defect_threshold_rounded"] == 0.70
    assert document["stable"] is False
    for name in ("stability-thresholds.png", "stability-thresholds.svg", "stability-regions.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_stability_bad_input_exit_two() -> None:
    result = runner.invoke(analyze_app, ["stability", "--p-doom", "1.5", "--json"])
    assert result.exit_code == 2
    assert "p_doom" in json.loads(result.output)["message"]


def test_sampling_sixty_three_percent() -> None:
    result = runner.invoke(analyze_app, ["sampling", "--json"])
    assert result.exit_code == 0
    assert round(json.loads(result.output)["p_caught"], 2) == 0.63


def test_entry_and_compare() -> None:
    entry = runner.invoke(analyze_app, ["entry", "--leader-p-win", "0.8", "--p-doom", "0.2", "--json"])
    assert entry.exit_code == 0
    assert all(player["joins"] for player in json.loads(entry.output)["players"])
    compare = runner.invoke(analyze_app, ["compare", "--json"])
    assert compare.exit_code == 0
    assert set(json.loads(compare.output)["kinds"]) == {"verification", "ruleset"}


def test_simulate_writes_outputs(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(
        "months = 12\n[fleet]\nchips = 5000\ndatacenters = 20\n"
        '[[attacks]]\nkind = "tampering"\nchips = 100\n',
        encoding="utf-8",
    )
    args = ["simulate", "--scenario", str(scenario), "--replications", "20", "--out", str(tmp_path)]
    result = runner.invoke(analyze_app, [*args, "--json"])
    assert result.exit_code == 0
    summaries = json.loads(result.output)["summaries"]
    assert summaries["verification"]["replications"] == 20
    lines = (tmp_path / "replications.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 41
    assert (tmp_path / "detection-times.png").exists()


def test_simulate_bad_scenario_exit_two(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text('[[attacks]]\nkind = "teleport"\nchips = 1\n', encoding="utf-8")
    result = runner.invoke(analyze_app, ["simulate", "--scenario", str(scenario)])
    assert result.exit_code == 2


def test_sweep_heatmap(tmp_path: Path) -> None:
    args = [
        "sweep",
        "--param", "defences.inspection_monthly=0.0,0.5",
        "--param", "fleet.defector_share=0.25,0.5",
        "--set", "fleet.chips=100000",
        "--replications", "5",
        "--workers", "1",
        "--out", str(tmp_path),
        "--json",
    ]  # fmt: skip
    result = runner.invoke(analyze_app, args)
    assert result.exit_code == 0
    assert len(json.loads(result.output)["cells"]) == 4
    assert (tmp_path / "sweep.png").exists()
    assert (tmp_path / "sweep.json").exists()


def test_chips_classify_vectors() -> None:
    result = runner.invoke(chips_app, [str(VECTORS), "--json"])
    assert result.exit_code == 0
    chips = {chip["name"]: chip for chip in json.loads(result.output)["chips"]}
    assert chips["GeForce RTX 4090"]["classes"] == {
        "eccn-3a090-2022-10": "not-controlled",
        "eccn-3a090-2023-10": "3A090.a",
    }


def test_chips_select_rule_and_bad_rule() -> None:
    result = runner.invoke(chips_app, [str(VECTORS), "--rule", "eccn-3a090-2023-10", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["rules"] == ["eccn-3a090-2023-10"]
    missing = runner.invoke(chips_app, [str(VECTORS), "--rule", "nope"])
    assert missing.exit_code == 2


def test_chips_bad_row_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    text = VECTORS.read_text(encoding="utf-8").replace("1978.9", "lots")
    bad.write_text(text, encoding="utf-8")
    result = runner.invoke(chips_app, [str(bad), "--json"])
    assert result.exit_code == 2
    assert "line 2" in json.loads(result.output)["message"]
