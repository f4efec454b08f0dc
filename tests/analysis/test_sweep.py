"""Parameter sweeps: grid order, seeding, the process pool and a Dask cluster on loopback."""

from __future__ import annotations

import pytest

from flexheg.analysis._scenario import Attack, AttackKind, Defences, Fleet, Scenario
from flexheg.analysis.sweep import run_sweep
from flexheg.errors import InputError

SCENARIO = Scenario(
    fleet=Fleet(chips=5_000, datacenters=20, defector_share=0.5),
    attacks=(Attack(AttackKind.DIVERSION, 100, spoof_fraction=1.0),),
    defences=Defences(location_check_months=0.0, license_months=0.0),
    months=12,
)
GRID = {"defences.inspection_monthly": [0.0, 0.3], "fleet.defector_share": [0.25, 0.5]}


def _metrics(cells: list) -> list[tuple]:  # type: ignore[type-arg]
    return [(c.values, c.summary.p_detected, c.summary.mean_lead) for c in cells]


def test_sweep_grid_order_and_effect() -> None:
    seen: list[tuple[int, int]] = []
    cells = run_sweep(
        SCENARIO, GRID, replications=30, seed=1, workers=1, progress=lambda d, t: seen.append((d, t))
    )
    assert [c.values for c in cells] == [
        {"defences.inspection_monthly": 0.0, "fleet.defector_share": 0.25},
        {"defences.inspection_monthly": 0.0, "fleet.defector_share": 0.5},
        {"defences.inspection_monthly": 0.3, "fleet.defector_share": 0.25},
        {"defences.inspection_monthly": 0.3, "fleet.defector_share": 0.5},
    ]
    assert seen[-1] == (4, 4)
    assert cells[2].summary.p_detected > cells[0].summary.p_detected


def test_pool_matches_single_process() -> None:
    single = run_sweep(SCENARIO, GRID, replications=20, seed=2, workers=1)
    pooled = run_sweep(SCENARIO, GRID, replications=20, seed=2, workers=2)
    assert _metrics(pooled) == _metrics(single)


def test_sweep_rejects_bad_parameter() -> None:
    with pytest.raises(InputError, match="unknown parameter"):
        run_sweep(SCENARIO, {"defences.colour": [1]}, replications=1, seed=0, workers=1)
    with pytest.raises(InputError, match="no values"):
        run_sweep(SCENARIO, {"fleet.chips": []}, replications=1, seed=0, workers=1)


def test_dask_matches_single_process() -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        remote = run_sweep(SCENARIO, GRID, replications=20, seed=3, scheduler=cluster.scheduler_address)
    local = run_sweep(SCENARIO, GRID, replications=20, seed=3, workers=1)
    assert _metrics(remote) == _metrics(local)
