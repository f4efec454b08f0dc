"""Registry benchmarks: census import rate, missing-chip report time, and an HTTP load test.

    python bench/bench_registry.py census --chips 10000000 --backend both
    python bench/bench_registry.py load --writers 16 --per-writer 250 --backend sqlite

``census`` writes a synthetic census CSV (half flexHEG devices with Ed25519 identity keys, half
non-flexHEG chips), imports it through ``Registry.import_census`` and times it against a baseline
that bulk-inserts the same rows without validation, in the same process. It then marks 1% of the
devices as overdue and times the missing-chip report against a baseline full-table count.
PostgreSQL needs ``FLEXHEG_TEST_POSTGRES_URL`` (``. .ci/services/postgres.sh``).

``load`` starts a real ``flexheg serve`` process on 127.0.0.1, runs concurrent writers that
register devices and record attestations (bounded in count and time), then checks that every
acknowledged write is stored exactly once. It prints one JSON document; the exit code is 1 if a
write was lost or duplicated.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import func, insert, select, text, update

from flexheg.registry import Registry, RegistryConfig
from flexheg.registry._census import CHUNK_ROWS
from flexheg.registry._models import Entity
from flexheg.wire import SigningKey

NOW = 1_800_000_000
DEADLINE = 86400
HEADER = "kind,id,owner,latitude,longitude,region,risk_weight,site_id,manufacturer,identity_key\n"


# Census and missing-chip report.


def write_census(path: Path, chips: int, seed: int = 1) -> None:
    """Write ``chips`` rows; even rows are devices with random 32-byte keys."""
    rng = random.Random(seed)
    regions = ["US", "NL", "TW", "KR", "JP", "SG", "DE", "FR"]
    with path.open("w", encoding="ascii") as handle:
        handle.write(HEADER)
        batch = []
        for index in range(chips):
            lat = rng.uniform(-60, 70)
            lon = rng.uniform(-180, 180)
            region = regions[index % len(regions)]
            weight = 1 + index % 3
            if index % 2 == 0:
                key = rng.getrandbits(256).to_bytes(32, "big").hex()
                batch.append(f"device,dev-{index:09d},owner-{index % 97},{lat:.5f},{lon:.5f},"
                             f"{region},{weight},,maker-{index % 5},{key}\n")
            else:
                batch.append(f"chip,chip-{index:09d},owner-{index % 97},{lat:.5f},{lon:.5f},"
                             f"{region},{weight},,,\n")
            if len(batch) >= 10_000:
                handle.writelines(batch)
                batch = []
        handle.writelines(batch)


def baseline_insert(registry: Registry, path: Path, rows: int) -> float:
    """Bulk-insert the first ``rows`` rows with no validation beyond parsing; return rows/s."""
    start = time.perf_counter()
    with registry.db.write() as session, path.open(encoding="ascii") as handle:
        reader = csv.DictReader(handle)
        chunk: list[dict[str, Any]] = []
        for done, row in enumerate(reader, start=1):
            chunk.append(_raw_values(row))
            if len(chunk) >= CHUNK_ROWS or done == rows:
                session.connection().execute(insert(Entity.metadata.tables["entities"]), chunk)
                chunk = []
            if done == rows:
                break
    elapsed = time.perf_counter() - start
    with registry.db.write() as session:
        session.execute(text("DELETE FROM entities"))
    return rows / elapsed


def _raw_values(row: dict[str, str]) -> dict[str, Any]:
    key = row["identity_key"] or None
    return {
        "id": row["id"], "kind": row["kind"], "owner": row["owner"],
        "latitude": float(row["latitude"]), "longitude": float(row["longitude"]),
        "region": row["region"], "status": "active", "risk_weight": int(row["risk_weight"] or 1),
        "site_id": None, "description": "", "created_at": NOW, "updated_at": NOW, "import_id": None,
        "identity_keyid": key, "identity_key": key, "manufacturer": row["manufacturer"] or None,
        "certificate": None, "last_attested_at": None, "attestation_count": 0, "away_since": None,
        "custody_problem": None, "version": 1,
    }


def bench_census(url: str, csv_path: Path, chips: int, baseline_rows: int) -> dict[str, Any]:
    registry = Registry.open(url, RegistryConfig(attestation_deadline=DEADLINE))
    try:
        base_rate = baseline_insert(registry, csv_path, min(baseline_rows, chips))
        start = time.perf_counter()
        registry.import_census(csv_path, actor="bench", now=NOW)
        import_seconds = time.perf_counter() - start

        # Every device attested recently except every 100th device, which is overdue.
        later = NOW + 2 * DEADLINE
        with registry.db.write() as session:
            session.execute(update(Entity).where(Entity.kind == "device")
                            .values(last_attested_at=later - 60))
            overdue = [f"dev-{i:09d}" for i in range(0, chips, 200)]
            for start_index in range(0, len(overdue), 5000):
                session.execute(update(Entity).where(Entity.id.in_(overdue[start_index:start_index + 5000]))
                                .values(last_attested_at=NOW))
        if registry.db.dialect == "postgresql":
            with registry.db.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE entities"))

        start = time.perf_counter()
        report = registry.missing_report(now=later)
        report_seconds = time.perf_counter() - start
        start = time.perf_counter()
        with registry.db.read() as session:
            session.scalar(select(func.count()).select_from(Entity))
        count_seconds = time.perf_counter() - start
    finally:
        registry.close()
    return {
        "backend": url.split(":", 1)[0],
        "chips": chips,
        "import_seconds": round(import_seconds, 2),
        "import_rows_per_second": round(chips / import_seconds),
        "baseline_rows": min(baseline_rows, chips),
        "baseline_rows_per_second": round(base_rate),
        "import_vs_baseline": round((chips / import_seconds) / base_rate, 3),
        "missing_report_seconds": round(report_seconds, 2),
        "missing_devices": len(report),
        "baseline_count_seconds": round(count_seconds, 2),
        "report_vs_count": round(report_seconds / count_seconds, 2) if count_seconds else None,
    }


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    base = os.environ.get("FLEXHEG_TEST_POSTGRES_URL")
    if not base:
        raise SystemExit("FLEXHEG_TEST_POSTGRES_URL is not set; run '. .ci/services/postgres.sh' first")
    name = "flexheg_bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_census(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="flexheg-bench-", dir=args.workdir))
    try:
        csv_path = work / "census.csv"
        start = time.perf_counter()
        write_census(csv_path, args.chips)
        print(f"# wrote {args.chips} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
        backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
        for backend in backends:
            if backend == "sqlite":
                result = bench_census(f"sqlite:///{work / 'registry.db'}", csv_path, args.chips,
                                      args.baseline_rows)
            else:
                with postgres_database() as url:
                    result = bench_census(url, csv_path, args.chips, args.baseline_rows)
            print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# HTTP load test.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _flexheg(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "flexheg.cli", *args], check=True,
                            capture_output=True, text=True, timeout=120)
    return result.stdout.strip()


@contextlib.contextmanager
def serve(url: str, log_path: Path) -> Iterator[tuple[str, str]]:
    """Start ``flexheg serve`` on a free loopback port; yield its base URL and an IB token.

    The server's log goes to ``log_path``: a pipe that nobody reads would fill up and block it.
    """
    token = _flexheg("registry", "token", "issue", "bench-ib", "--role", "international-body",
                     "--db", url)
    port = _free_port()
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "flexheg.cli", "-v", "serve", "--db", url, "--host", "127.0.0.1",
         "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"flexheg serve exited: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        else:
            raise RuntimeError("flexheg serve did not respond to /v1/health within 60 s")
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def run_load(url: str, writers: int, per_writer: int, time_limit: float, log_path: Path) -> dict[str, Any]:
    """Run ``writers`` threads, each registering ``per_writer`` devices and recording as many
    attestations of one shared device; return what was acknowledged and what was stored."""
    with serve(url, log_path) as (base, token):
        headers = {"Authorization": f"Bearer {token}"}
        client = httpx.Client(base_url=base, headers=headers, timeout=30)
        site = {"id": "dc-load", "kind": "data-center", "owner": "acme", "latitude": 1.0,
                "longitude": 2.0, "region": "SG"}
        client.post("/v1/entities", json=site).raise_for_status()
        shared = {**site, "id": "gpu-shared", "kind": "device", "site_id": "dc-load",
                  "identity_key": _random_key()}
        client.post("/v1/entities", json=shared).raise_for_status()

        tick = int(time.time()) - 10
        acknowledged = {"register": 0, "conflict": 0, "attest": 0, "unknown": 0, "errors": 0}
        lock = threading.Lock()
        stop_at = time.monotonic() + time_limit

        def writer(number: int) -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as own:
                for index in range(per_writer):
                    if time.monotonic() > stop_at:
                        return
                    body = {**site, "id": f"gpu-{number}-{index}", "kind": "device",
                            "site_id": "dc-load", "identity_key": _random_key()}
                    outcome = _post(own, "/v1/entities", body, retry=True)
                    attested = _post(own, "/v1/devices/gpu-shared/attestations", {"tick": tick},
                                     retry=False)
                    with lock:
                        acknowledged[outcome] += 1
                        acknowledged["attest" if attested == "register" else attested] += 1

        start = time.perf_counter()
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start

        devices: list[dict[str, Any]] = []
        while True:
            page = client.get("/v1/entities", params={"kind": "device", "limit": 10_000,
                                                      "offset": len(devices)}).json()
            devices.extend(page)
            if len(page) < 10_000:
                break
        stored_ids = [d["id"] for d in devices if d["id"] != "gpu-shared"]
        shared_now = client.get("/v1/entities/gpu-shared").json()
        history = client.get("/v1/entities/gpu-shared/history").json()
        client.close()
    registered = acknowledged["register"]
    writes = registered + acknowledged["attest"]
    lost = (registered - len(set(stored_ids))) + (acknowledged["attest"] - shared_now["attestation_count"])
    duplicated = (len(stored_ids) - len(set(stored_ids))) + (
        sum(1 for c in history if c["action"] == "attestation") - shared_now["attestation_count"])
    return {
        "backend": url.split(":", 1)[0],
        "writers": writers,
        "acknowledged_registrations": registered,
        "stored_devices": len(stored_ids),
        "acknowledged_attestations": acknowledged["attest"],
        "stored_attestation_count": shared_now["attestation_count"],
        "ambiguous_requests": acknowledged["unknown"],
        "failed_requests": acknowledged["errors"],
        "lost_writes": lost,
        "duplicated_writes": duplicated,
        "seconds": round(elapsed, 2),
        "writes_per_second": round(writes / elapsed, 1),
    }


def _random_key() -> dict[str, Any]:
    return SigningKey.generate().public.to_dict()


def _post(client: httpx.Client, path: str, body: dict[str, Any], *, retry: bool) -> str:
    """POST once, or for idempotent registrations up to three times until a status arrives."""
    for _ in range(3 if retry else 1):
        try:
            response = client.post(path, json=body)
        except httpx.TransportError:
            continue
        if response.status_code in (200, 201):
            return "register"
        if response.status_code == 409:
            return "conflict"
        return "errors"
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    census = sub.add_parser("census", help="census import rate and missing-chip report time")
    census.add_argument("--chips", type=int, default=10_000_000, help="rows in the census")
    census.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    census.add_argument("--baseline-rows", type=int, default=1_000_000,
                        help="rows that the unvalidated baseline inserts")
    census.add_argument("--workdir", type=Path, default=None, help="folder for the CSV and SQLite file")
    load = sub.add_parser("load", help="concurrent writers against a real flexheg serve")
    load.add_argument("--writers", type=int, default=16)
    load.add_argument("--per-writer", type=int, default=100)
    load.add_argument("--time-limit", type=float, default=120.0, help="seconds before writers stop")
    load.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    if args.mode == "census":
        run_census(args)
        return
    work = Path(tempfile.mkdtemp(prefix="flexheg-load-"))
    try:
        if args.backend == "sqlite":
            result = run_load(f"sqlite:///{work / 'registry.db'}", args.writers, args.per_writer,
                              args.time_limit, work / "server.log")
        else:
            with postgres_database() as url:
                result = run_load(url, args.writers, args.per_writer, args.time_limit,
                                  work / "server.log")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    if result["lost_writes"] or result["duplicated_writes"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
