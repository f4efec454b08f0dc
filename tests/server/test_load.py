"""Concurrent writers against a real ``flexheg serve`` process on loopback.

The load driver is ``bench/bench_registry.py load``. Here it runs small: 8 writers with 20
writes of each kind, for at most 60 s. The test checks that no acknowledged write was lost or
stored twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_registry.py"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_writers_lose_nothing(backend: str) -> None:
    if backend == "postgresql" and not os.environ.get("FLEXHEG_TEST_POSTGRES_URL"):
        pytest.skip("FLEXHEG_TEST_POSTGRES_URL is not set; source .ci/services/postgres.sh")
    completed = subprocess.run(
        [sys.executable, str(BENCH), "load", "--writers", "8", "--per-writer", "20",
         "--time-limit", "60", "--backend", backend],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["failed_requests"] == 0
    assert result["ambiguous_requests"] == 0
    assert result["lost_writes"] == 0
    assert result["duplicated_writes"] == 0
    assert result["stored_devices"] == result["acknowledged_registrations"] == 160
    assert result["stored_attestation_count"] == result["acknowledged_attestations"] == 160
