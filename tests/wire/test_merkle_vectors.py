"""RFC 9162 inclusion and consistency vectors from transparency-dev/merkle (Apache-2.0)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from flexheg.errors import Reason, Rejected
from flexheg.wire.merkle import verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "merkle"


def _load(kind: str) -> list[tuple[str, dict[str, Any]]]:
    files = sorted((VECTORS / kind).glob("*/*.json"))
    return [(str(path.relative_to(VECTORS)), json.loads(path.read_text())) for path in files]


def _hash(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _proof(items: list[str] | None) -> list[bytes]:
    return [_hash(item) for item in items or []]


INCLUSION = _load("inclusion")
CONSISTENCY = _load("consistency")


def test_vectors_present() -> None:
    assert len(INCLUSION) >= 40
    assert len(CONSISTENCY) >= 40
    assert (VECTORS / "LICENSE").is_file()


@pytest.mark.parametrize(("name", "case"), INCLUSION, ids=[n for n, _ in INCLUSION])
def test_inclusion_vector(name: str, case: dict[str, Any]) -> None:
    def check() -> None:
        verify_inclusion(
            _hash(case["leafHash"]), index=case["leafIdx"], size=case["treeSize"],
            proof=_proof(case["proof"]), root=_hash(case["root"]),
        )

    if case["wantErr"]:
        with pytest.raises(Rejected) as caught:
            check()
        assert caught.value.reason is Reason.BAD_PROOF
    else:
        check()


@pytest.mark.parametrize(("name", "case"), CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_consistency_vector(name: str, case: dict[str, Any]) -> None:
    def check() -> None:
        verify_consistency(
            old_size=case["size1"], new_size=case["size2"], old_root=_hash(case["root1"]),
            new_root=_hash(case["root2"]), proof=_proof(case["proof"]),
        )

    if case["wantErr"]:
        with pytest.raises(Rejected) as caught:
            check()
        assert caught.value.reason is Reason.BAD_PROOF
    else:
        check()
