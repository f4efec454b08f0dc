"""``flexheg ruleset build`` and ``extension`` reject inputs that no device would accept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _parties import Parties, run_cli

RULES = """\
[[rule]]
id = "all"
effect = "allow"
when = "workload.cluster_size <= 100000"
reason = "everything declared"
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = Parties().write_files(tmp_path)
    paths["rules"] = tmp_path / "rules.toml"
    paths["rules"].write_text(RULES, encoding="utf-8")
    paths["empty"] = tmp_path / "empty.toml"
    paths["empty"].write_text("", encoding="utf-8")
    return paths


def build(files: dict[str, Path], rules: Path, lifetime: str, out: Path) -> tuple[int, Any]:
    code, document, _ = run_cli(
        "ruleset",
        "build",
        rules,
        "--agreement",
        files["agreement"],
        "--version",
        "1",
        "--lifetime",
        lifetime,
        "--out",
        out,
    )
    return code, document


def test_build_accepts_valid_update(files: dict[str, Path], tmp_path: Path) -> None:
    code, document = build(files, files["rules"], "30d", tmp_path / "v1.json")
    assert code == 0
    assert document["version"] == 1


def test_build_rejects_empty_rules(files: dict[str, Path], tmp_path: Path) -> None:
    code, document = build(files, files["empty"], "30d", tmp_path / "v1.json")
    assert code == 2
    assert "denies every workload" in document["message"]
    assert not (tmp_path / "v1.json").exists()


@pytest.mark.parametrize("lifetime", ["0s", "91d"])
def test_build_rejects_lifetime_outside_agreement(
    files: dict[str, Path], tmp_path: Path, lifetime: str
) -> None:
    code, document = build(files, files["rules"], lifetime, tmp_path / "v1.json")
    assert code == 2
    assert "--lifetime" in document["message"]


def test_extension_rejects_zero_addition(files: dict[str, Path], tmp_path: Path) -> None:
    build(files, files["rules"], "30d", tmp_path / "v1.json")
    code, document, _ = run_cli(
        "ruleset",
        "extension",
        tmp_path / "v1.json",
        "--serial",
        "1",
        "--add",
        "0s",
        "--out",
        tmp_path / "x.json",
    )
    assert code == 2
    assert "--add" in document["message"]
