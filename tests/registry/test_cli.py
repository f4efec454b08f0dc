"""The ``flexheg registry`` commands, run through Typer's test runner on SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flexheg.cli.registry import app
from flexheg.wire import SigningKey, write_key_pair

AT = "2027-01-15T08:00:00Z"


@pytest.fixture
def run(tmp_path: Path) -> Any:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'registry.db'}"

    def invoke(*args: str, code: int = 0, database: bool = True) -> Any:
        result = runner.invoke(app, [*args, *(["--db", db] if database else []), "--json"])
        assert result.exit_code == code, result.output
        return json.loads(result.stdout)

    return invoke


def test_register_import_and_report(run: Any, tmp_path: Path) -> None:
    run("register", "dc-1", "--kind", "data-center", "--owner", "acme", "--latitude", "52.37",
        "--longitude", "4.9", "--region", "NL", "--at", AT)
    key = SigningKey.generate()
    _, public = write_key_pair(key, tmp_path / "gpu-1")
    created = run("register", "gpu-1", "--kind", "device", "--owner", "acme", "--latitude", "52.37",
                  "--longitude", "4.9", "--region", "NL", "--site", "dc-1", "--identity-key",
                  str(public), "--at", AT)
    assert created["identity_key"]["keyid"] == key.keyid

    census = tmp_path / "census.csv"
    census.write_text("kind,id,owner,latitude,longitude,region\nchip,c-1,acme,1,2,SG\n")
    assert run("import", str(census), "--at", AT)["rows"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,id,owner,latitude,longitude,region\nchip,c-2,acme,1,north,SG\n")
    failure = run("import", str(bad), "--at", AT, code=2)
    assert "line 2" in failure["message"]

    updated = run("update", "c-1", "--set", "risk_weight=3", "--reason", "audit", "--at", AT)
    assert updated["risk_weight"] == 3
    history = run("history", "c-1")["changes"]
    assert history[-1]["old"] == {"risk_weight": 1}

    report = run("missing", "--at", "2027-02-15T08:00:00Z")
    assert [row["device_id"] for row in report["devices"]] == ["gpu-1"]


def test_renew_refused_exits_1(run: Any, tmp_path: Path) -> None:
    run("register", "dc-1", "--kind", "data-center", "--owner", "acme", "--latitude", "52.37",
        "--longitude", "4.9", "--region", "NL", "--at", AT)
    _, public = write_key_pair(SigningKey.generate(), tmp_path / "gpu-1")
    run("register", "gpu-1", "--kind", "device", "--owner", "acme", "--latitude", "52.37",
        "--longitude", "4.9", "--region", "NL", "--identity-key", str(public), "--at", AT)
    private, _ = write_key_pair(SigningKey.generate(), tmp_path / "nl")
    renew = ("renew", "gpu-1", "--state", "NL", "--key", str(private), "--agreement",
             "sha256:" + 64 * "a", "--at", AT)
    assert run(*renew)["granted"] is True
    run("locate", "gpu-1", "--latitude", "1.35", "--longitude", "103.8", "--at", AT)
    refused = run(*renew, code=1)
    assert refused["ok"] is False
    assert refused["reasons"] == ["away-from-registered-location"]


def test_draw_round_and_detection(run: Any) -> None:
    for index in range(5):
        run("register", f"fab-{index}", "--kind", "fab", "--owner", "tsmc", "--latitude", "24.8",
            "--longitude", "121.0", "--region", "TW", "--at", AT)
    drawn = run("draw-round", "--seed", "cp-1", "--sample-size", "2", "--at", AT)
    assert len(drawn["inspections"]) == 2
    entity = drawn["inspections"][0]["entity_id"]
    recorded = run("inspect", entity, "--missing", "--round", str(drawn["id"]), "--at", AT)
    assert recorded["problems"] == ["not-seen"]
    detection = run("oversight", "detection", "--compromised", "1000", "--rate", "1/1000",
                    database=False)
    assert round(detection["p_at_least_one_sampled"], 3) == 0.632


def test_invalid_input_exits_2(run: Any) -> None:
    failure = run("register", "x", "--kind", "toaster", "--owner", "a", "--latitude", "0",
                  "--longitude", "0", "--region", "r", code=2)
    assert "entity kind" in failure["message"]
    assert "not registered" in run("show", "nope", code=2)["message"]
