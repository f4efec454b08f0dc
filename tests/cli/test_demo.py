"""``flexheg demo``: the treaty scenario runs end to end and meets every guarantee it checks."""

from __future__ import annotations

from pathlib import Path

from _parties import run_cli


def test_demo_json_meets_every_check(tmp_path: Path) -> None:
    code, report, _ = run_cli("demo", "--dir", tmp_path / "demo")

    assert code == 0
    assert report["ok"] is True
    assert report["total"] >= 15
    assert report["met"] == report["total"]
    unmet = [check["guarantee"] for check in report["checks"] if not check["met"]]
    assert unmet == []
    observed = {check["observed"] for check in report["checks"]}
    for reason in ("unknown-signer", "insufficient-approvals", "digest-mismatch", "rollback", "stale-nonce"):
        assert f"rejected: {reason}" in observed
    assert (tmp_path / "demo" / "report.json").is_file()
    assert (tmp_path / "demo" / "agreement.json").is_file()


def test_demo_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("data")
    code, document, _ = run_cli("demo", "--dir", tmp_path)
    assert code == 2
    assert "not empty" in document["message"]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
