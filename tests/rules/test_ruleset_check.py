"""The ``ruleset check`` command on TOML rules files, update statements and DSSE envelopes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flexheg.cli.ruleset_check import check, load_ruleset
from flexheg.rules import RulesetUpdate, load_rules_file
from flexheg.wire import PAYLOAD_TYPE, Envelope

PAIRS = Path(__file__).parent / "pairs"
AGREEMENT = "sha256:" + "ab" * 32

app = typer.Typer()
app.command()(check)
runner = CliRunner()


def run(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def write_update(path: Path, rules: Path, *, version: int, lifetime: int, agreement: str = AGREEMENT) -> Path:
    update = RulesetUpdate(agreement, version, 1_700_000_000, lifetime, load_rules_file(rules))
    path.write_bytes(update.encode())
    return path


def test_toml_pair_all_proved() -> None:
    code, document = run(
        str(PAIRS / "ratchet-rule-kept/new.toml"), "--against", str(PAIRS / "ratchet-rule-kept/old.toml")
    )
    assert code == 0
    assert document["ok"] is True
    verdicts = {entry["name"]: entry["verdict"] for entry in document["properties"]}
    assert verdicts["succession ratchet"] == "proved"
    assert verdicts["equivalence"] == "refuted"
    (equivalence,) = [e for e in document["properties"] if e["name"] == "equivalence"]
    assert set(equivalence["counterexample"]["decisions"]) == {"old", "new"}


def test_toml_pair_refuted_exits_one_with_counterexample() -> None:
    folder = PAIRS / "baseline-broken-by-license"
    code, document = run(str(folder / "new.toml"), "--against", str(folder / "old.toml"))
    assert code == 1
    assert document["ok"] is False
    assert document["reason"] == "succession-rule-violated"
    (entry,) = [e for e in document["properties"] if e["name"].startswith("succession baseline-rights")]
    assert entry["verdict"] == "refuted"
    assert entry["required"] is True
    assert {"kind", "run_id", "flop", "cluster_size"} <= set(entry["counterexample"]["workload"])


def test_explicit_baseline_rights() -> None:
    folder = PAIRS / "relax-flop-cap"
    args = [str(folder / "new.toml"), "--against", str(folder / "old.toml")]
    code, document = run(*args, "--baseline-rights", 'workload.kind == "training" && run.flop_total < 1e25')
    assert code == 0
    code, document = run(*args, "--baseline-rights", 'workload.kind == "inference"')
    assert code == 1
    (entry,) = [e for e in document["properties"] if e["name"].startswith("baseline-rights")]
    assert entry["counterexample"]["workload"]["kind"] == "inference"


def test_informational_ratchet_does_not_fail() -> None:
    folder = PAIRS / "tighten-flop-cap"
    code, document = run(str(folder / "new.toml"), "--against", str(folder / "old.toml"))
    assert code == 0
    (entry,) = [e for e in document["properties"] if e["name"] == "ratchet"]
    assert entry["verdict"] == "refuted"
    assert entry["required"] is False


def test_update_files_check_lifetime_and_version(tmp_path: Path) -> None:
    folder = PAIRS / "lifetime-within"
    old = write_update(tmp_path / "old.json", folder / "old.toml", version=1, lifetime=86400)
    new = write_update(tmp_path / "new.json", folder / "new.toml", version=2, lifetime=2592000)
    code, document = run(str(new), "--against", str(old))
    assert code == 0
    names = {entry["name"]: entry["verdict"] for entry in document["properties"]}
    assert names["version order"] == "proved"
    assert names["succession max-lifetime 7776000"] == "proved"

    rollback = write_update(tmp_path / "rollback.json", folder / "new.toml", version=1, lifetime=100)
    code, document = run(str(rollback), "--against", str(old))
    assert code == 1
    assert {e["name"]: e["verdict"] for e in document["properties"]}["version order"] == "refuted"


def test_toml_against_lifetime_rule_is_unprovable() -> None:
    folder = PAIRS / "lifetime-within"
    code, document = run(str(folder / "new.toml"), "--against", str(folder / "old.toml"))
    assert code == 1
    (entry,) = [e for e in document["properties"] if e["name"].startswith("succession max-lifetime")]
    assert entry["verdict"] == "unprovable"


def test_envelope_is_accepted(tmp_path: Path) -> None:
    folder = PAIRS / "relax-flop-cap"
    update = RulesetUpdate(AGREEMENT, 3, 0, 100, load_rules_file(folder / "new.toml"))
    path = tmp_path / "new.dsse.json"
    path.write_bytes(Envelope(update.encode(), PAYLOAD_TYPE, ()).to_json())
    loaded = load_ruleset(path)
    assert loaded.version == 3
    assert loaded.lifetime == 100
    assert loaded.ruleset == update.ruleset


@pytest.mark.parametrize(
    ("content", "suffix"),
    [("[1, 2]", ".json"), ('{"type": "flexheg.dev/unknown/v1"}', ".json"), ("[[rule]]\nid = 3", ".toml")],
)
def test_bad_files_exit_two(tmp_path: Path, content: str, suffix: str) -> None:
    bad = tmp_path / f"bad{suffix}"
    bad.write_text(content, encoding="utf-8")
    code, document = run(str(bad), "--against", str(PAIRS / "relax-flop-cap/old.toml"))
    assert code == 2
    assert document["error"] == "input"


def test_bad_baseline_condition_exits_two() -> None:
    folder = PAIRS / "relax-flop-cap"
    code, _ = run(
        str(folder / "new.toml"),
        "--against",
        str(folder / "old.toml"),
        "--baseline-rights",
        "workload.flop <",
    )
    assert code == 2


def test_text_output_shows_counterexample() -> None:
    folder = PAIRS / "ratchet-rule-broken"
    result = runner.invoke(app, [str(folder / "new.toml"), "--against", str(folder / "old.toml")])
    assert result.exit_code == 1
    assert "refuted" in result.stdout
    assert "workload:" in result.stdout
