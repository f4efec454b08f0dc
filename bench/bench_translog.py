"""Benchmark the transparency log against pymerkle on the same machine, in the same run.

Measures, for N entries (default 1,000,000):

* append throughput: entries appended per second in durable batches (one fsynced SQLite commit
  per batch), against pymerkle's ``SqliteTree`` and ``InmemoryTree`` with the same batches;
* single-entry durable appends per second (one fsync per entry), ours only;
* inclusion-proof time at size N: mean and 99th percentile over random indices, against
  pymerkle's ``prove_inclusion`` on the same trees.

Run: ``python bench/bench_translog.py [--entries N] [--batch B] [--proofs P]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pymerkle

from flexheg.translog.log import TransparencyLog
from flexheg.translog.storage import SQLiteLogStorage
from flexheg.wire.checkpoint import NoteSigner
from flexheg.wire.merkle import leaf_hash, verify_inclusion


def entries(count: int, start: int = 0) -> list[bytes]:
    return [f"approval entry {i:012d}".encode() for i in range(start, start + count)]


def timed_appends(total: int, batch: int, append: Callable[[list[bytes]], object]) -> float:
    started = time.perf_counter()
    for start in range(0, total, batch):
        append(entries(min(batch, total - start), start))
    return total / (time.perf_counter() - started)


def proof_times(count: int, size: int, prove: Callable[[int], object]) -> tuple[float, float]:
    rng = random.Random(7)
    samples = []
    for _ in range(count):
        index = rng.randrange(size)
        started = time.perf_counter()
        prove(index)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.mean(samples) * 1e3, samples[int(0.99 * (len(samples) - 1))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--proofs", type=int, default=2000)
    args = parser.parse_args()
    total, batch = args.entries, args.batch
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, pymerkle {pymerkle.__version__}")
    print(f"entries: {total}, batch: {batch}")

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        log = TransparencyLog(SQLiteLogStorage(root / "ours.sqlite"), NoteSigner.generate("bench"))
        ours_rate = timed_appends(total, batch, log.append)

        single = 200
        started = time.perf_counter()
        for entry in entries(single, total):
            log.append([entry])
        single_rate = single / (time.perf_counter() - started)

        size = log.size()
        root_hash = log.root_hash()

        def ours_prove(index: int) -> list[bytes]:
            return log.inclusion_proof(index, size)

        ours_mean, ours_p99 = proof_times(args.proofs, size, ours_prove)
        check = 97 % size
        verify_inclusion(leaf_hash(log.entry(check)), index=check, size=size,
                         proof=log.inclusion_proof(check, size), root=root_hash)

        sqlite_tree = pymerkle.SqliteTree(str(root / "pymerkle.sqlite"))
        sqlite_rate = timed_appends(total, batch, sqlite_tree.append_entries)
        memory_tree = pymerkle.InmemoryTree()
        memory_rate = timed_appends(total, batch, lambda items: [memory_tree.append_entry(e)
                                                                 for e in items])
        # pymerkle indexes leaves from 1.
        sqlite_mean, sqlite_p99 = proof_times(
            args.proofs, total, lambda i: sqlite_tree.prove_inclusion(i + 1, total))
        memory_mean, memory_p99 = proof_times(
            args.proofs, total, lambda i: memory_tree.prove_inclusion(i + 1, total))
        log.close()

    print("\nappends per second (durable batches for SQLite backends):")
    print(f"  flexheg SQLite log        {ours_rate:12,.0f}")
    print(f"  pymerkle SqliteTree       {sqlite_rate:12,.0f}   ratio {ours_rate / sqlite_rate:6.1f}x")
    print(f"  pymerkle InmemoryTree     {memory_rate:12,.0f}   ratio {ours_rate / memory_rate:6.1f}x")
    print(f"  flexheg, one fsync each   {single_rate:12,.0f}")
    print(f"\ninclusion proof at size {size} (ms, mean / p99 over {args.proofs}):")
    print(f"  flexheg SQLite log        {ours_mean:8.3f} / {ours_p99:8.3f}")
    print(f"  pymerkle SqliteTree       {sqlite_mean:8.3f} / {sqlite_p99:8.3f}"
          f"   ratio {sqlite_mean / ours_mean:6.1f}x")
    print(f"  pymerkle InmemoryTree     {memory_mean:8.3f} / {memory_p99:8.3f}"
          f"   ratio {memory_mean / ours_mean:6.1f}x")


if __name__ == "__main__":
    main()
