"""Parameter sweeps of the fleet simulation on a local process pool or a Dask cluster.

A sweep runs every combination of the given parameter values (a grid) with the same number of
replications. Cell ``i`` gets child ``i`` of the root seed sequence and each replication a child of
that, so a sweep gives the same numbers on one process, a pool or a cluster.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np

from flexheg.analysis._scenario import Scenario
from flexheg.analysis.simulation import Summary, run_replications, summarize
from flexheg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["SweepCell", "run_sweep"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SweepCell:
    """One grid point: its parameter values and the summary of its replications."""

    values: dict[str, Any]
    summary: Summary

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, **self.summary.to_dict()}


def _run_cell(
    scenario: Scenario, values: dict[str, Any], replications: int, seed: np.random.SeedSequence
) -> SweepCell:
    cell_scenario = scenario.with_values(values)
    results = run_replications(cell_scenario, replications, seed)
    return SweepCell(values=values, summary=summarize(cell_scenario, results))


def _grid(parameters: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    if not parameters:
        return [{}]
    for name, values in parameters.items():
        if not values:
            raise InputError(f"sweep parameter {name!r} has no values; give at least one")
    names = list(parameters)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*parameters.values())]


def run_sweep(
    scenario: Scenario,
    parameters: Mapping[str, Sequence[Any]],
    *,
    replications: int,
    seed: int,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> list[SweepCell]:
    """Run the grid of ``parameters`` over ``scenario``; return the cells in grid order.

    Args:
        parameters: dotted parameter names (see :meth:`Scenario.with_values`) to value lists.
        workers: local processes; 1 runs in this process, None uses every CPU.
        scheduler: address of a Dask scheduler such as ``tcp://127.0.0.1:8786``; needs the
            ``flexheg[dist]`` extra.
        progress: called with (cells done, cells in total) after each cell.

    Raises:
        InputError: on an unknown parameter, an empty value list or a missing Dask install.
    """
    grid = _grid(parameters)
    for values in grid:
        scenario.with_values(values)  # Validate every cell before any work starts.
    seeds = np.random.SeedSequence(seed).spawn(len(grid))
    logger.info("sweep of %d cells x %d replications", len(grid), replications)

    if scheduler is not None:
        return _run_dask(
            scenario,
            grid=grid,
            replications=replications,
            seeds=seeds,
            scheduler=scheduler,
            progress=progress,
        )
    if workers == 1 or len(grid) == 1:
        cells = []
        for done, (values, cell_seed) in enumerate(zip(grid, seeds, strict=True), start=1):
            cells.append(_run_cell(scenario, values, replications, cell_seed))
            if progress is not None:
                progress(done, len(grid))
        return cells

    results: dict[int, SweepCell] = {}
    max_workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=max_workers) as pool:
        futures = {
            pool.submit(_run_cell, scenario, values, replications, cell_seed): index
            for index, (values, cell_seed) in enumerate(zip(grid, seeds, strict=True))
        }
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if progress is not None:
                progress(len(results), len(grid))
    return [results[index] for index in range(len(grid))]


def _run_dask(
    scenario: Scenario,
    *,
    grid: list[dict[str, Any]],
    replications: int,
    seeds: list[np.random.SeedSequence],
    scheduler: str,
    progress: Progress | None,
) -> list[SweepCell]:
    try:
        from distributed import Client  # noqa: PLC0415
        from distributed import as_completed as dask_completed  # noqa: PLC0415
    except ImportError:
        raise InputError("--scheduler needs Dask; install it with: pip install 'flexheg[dist]'") from None

    logger.info("connecting to Dask scheduler %s", scheduler)
    with Client(scheduler, timeout="30s") as client:  # type: ignore[no-untyped-call]
        futures = [
            client.submit(_run_cell, scenario, values, replications, cell_seed, pure=False)
            for values, cell_seed in zip(grid, seeds, strict=True)
        ]
        index_of = {future.key: index for index, future in enumerate(futures)}
        results: dict[int, SweepCell] = {}
        for future in dask_completed(futures):  # type: ignore[no-untyped-call]
            results[index_of[future.key]] = future.result()
            if progress is not None:
                progress(len(results), len(grid))
    return [results[index] for index in range(len(grid))]
