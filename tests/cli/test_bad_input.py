"""Bad input to commands outside the device workflow exits 2 with a message naming the fix."""

from __future__ import annotations

from pathlib import Path

from _parties import run_cli


def test_registry_unreachable_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'registry.db'}"
    code, document, _ = run_cli("registry", "list", "--db", url)
    assert code == 2
    assert "cannot open the registry database" in document["message"]
    assert url in document["message"]


def test_registry_import_oversized_header(tmp_path: Path) -> None:
    census = tmp_path / "census.csv"
    census.write_text("a" * 200_000 + "\n", encoding="utf-8")
    code, document, _ = run_cli("registry", "import", census, "--db", f"sqlite:///{tmp_path / 'r.db'}")
    assert code == 2
    assert "line 1: invalid CSV header" in document["message"]


def test_chips_classify_non_utf8(tmp_path: Path) -> None:
    chips = tmp_path / "chips.csv"
    chips.write_bytes(b"\xff\xfe not text")
    code, document, _ = run_cli("chips", "classify", chips)
    assert code == 2
    assert "UTF-8" in document["message"]


def test_landmark_keygen_non_finite_latitude(tmp_path: Path) -> None:
    code, document, _ = run_cli(
        "landmark", "keygen", tmp_path / "lm", "--id", "lm1", "--latitude", "nan", "--longitude", "0"
    )
    assert code == 2
    assert "not a finite number" in document["message"]
