"""Concurrent writers lose no update and duplicate no registration."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flexheg.registry import ConflictError, Registry

from .factories import NOW, device


def test_concurrent_attestations_all_counted(populated: Registry) -> None:
    def attest(_: int) -> None:
        populated.record_attestation("gpu-1", tick=NOW, actor="v", now=NOW)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(attest, range(120)))
    assert populated.get("gpu-1")["attestation_count"] == 121
    assert sum(1 for c in populated.history("gpu-1") if c["action"] == "attestation") == 121


def test_concurrent_duplicate_registration(populated: Registry) -> None:
    def register(index: int) -> str:
        try:
            populated.register(device(f"gpu-dup-{index % 10}"), actor="ib", now=NOW)
        except ConflictError:
            return "conflict"
        return "created"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(register, range(60)))
    assert outcomes.count("created") == 10
    assert outcomes.count("conflict") == 50
    assert populated.count(kind="device") == 13
