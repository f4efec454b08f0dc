"""Metering overhead per training step against the unmetered loop, in one process.

Trains a small byte-level transformer language model (the realistic loop) and the digits MLP
of the tests (a tiny loop, where fixed per-step costs dominate) under four settings:

* ``baseline``: the plain loop (forward, backward, optimizer step), no device;
* ``exact``: every step counted under FlopCounterMode and charged to the device;
* ``static``: ``static_graph=True``, each step charged to the device before it runs, one
  FlopCounterMode recount every 100 steps;
* ``static+reserve``: as ``static`` with ``meter_every=K``, one device call per K steps.

The settings take turns step by step, so drift in machine load hits them alike. The script
prints the mean step time of each setting and the median, each with its overhead over the
baseline. The mean spreads a device call over the K steps it pays for.

Run: ``python bench/bench_metering.py`` (needs ``flexheg[torch]``; about two minutes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from flexheg.device import Agreement, AgreementKind, Device
from flexheg.integrations.torch import TrainingRun
from flexheg.policy import Action, Approver, ApproverKey, Policy
from flexheg.rules import Rule, Ruleset, parse_expression
from flexheg.rules._ruleset import Effect
from flexheg.wire import SigningKey

CAP_RULE = "run.flop_total <= 1e30"


def provision(folder: Path) -> Device:
    """Provision a device whose baseline ruleset allows runs up to 1e30 FLOP, checked on every step."""
    approver, manufacturer = SigningKey.generate(), SigningKey.generate()
    rule = Rule("cap", Effect.ALLOW, CAP_RULE, "runs up to 1e30 FLOP", parse_expression(CAP_RULE))
    agreement = Agreement(
        name="benchmark agreement",
        kind=AgreementKind.RULESET,
        approvers=(Approver("bloc-a", 1, (ApproverKey(approver.public),)),),
        policies={action: Policy("all") for action in Action},
        manufacturers=(manufacturer.public,),
        baseline=Ruleset([rule]),
        max_lifetime=86400,
        max_extension=0,
    )
    return Device.provision(
        folder, agreement_payload=agreement.encode(), manufacturer_key=manufacturer, device_id="bench"
    )


class ByteLM(torch.nn.Module):
    """A decoder-only transformer over bytes."""

    def __init__(self, width: int, layers: int, heads: int, context: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(256, width)
        self.position = torch.nn.Parameter(torch.zeros(context, width))
        layer = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True)
        self.blocks = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, 256)
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(context))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(tokens) + self.position[: tokens.shape[1]]
        hidden = self.blocks(hidden, mask=self.mask, is_causal=True)
        return self.head(hidden)  # type: ignore[no-any-return]


def corpus() -> torch.Tensor:
    """Real text: the bytes of torch's own module source."""
    path = Path(torch.nn.modules.module.__file__)
    return torch.tensor(list(path.read_bytes()), dtype=torch.long)


Workload = tuple[
    Callable[[], torch.nn.Module],
    Callable[[int], Any],
    Callable[[torch.nn.Module], Callable[[Any], torch.Tensor]],
]


def lm_workload(batch: int, context: int) -> Workload:
    data = corpus()

    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        return ByteLM(width=192, layers=4, heads=4, context=context)

    def batch_at(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = (torch.arange(batch) * 7919 + step * batch * context) % (len(data) - context - 1)
        window = torch.stack([data[s : s + context + 1] for s in starts.tolist()])
        return window[:, :-1], window[:, 1:]

    def loss_for(model: torch.nn.Module) -> Callable[[Any], torch.Tensor]:
        return lambda b: torch.nn.functional.cross_entropy(model(b[0]).reshape(-1, 256), b[1].reshape(-1))

    return make, batch_at, loss_for


def mlp_workload() -> Workload:
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]  # noqa: PLC0415

    digits = load_digits()
    inputs = torch.tensor(digits.data, dtype=torch.float32) / 16
    labels = torch.tensor(digits.target)

    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(64, 128),
            torch.nn.ReLU(),
            torch.nn.Linear(128, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 10),
        )

    def batch_at(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = step * 64 % (len(labels) - 64)
        return inputs[start : start + 64], labels[start : start + 64]

    def loss_for(model: torch.nn.Module) -> Callable[[Any], torch.Tensor]:
        return lambda b: torch.nn.functional.cross_entropy(model(b[0]), b[1])

    return make, batch_at, loss_for


def measure(
    name: str,
    workload: Workload,
    steps: int,
    warmup: int,
    reserve: int,
    folder: Path,
    tokens: int | None = None,
) -> None:
    make, batch_at, loss_for = workload
    device = provision(folder / name)
    settings: dict[str, dict[str, Any] | None] = {
        "baseline": None,
        "exact": {},
        "static": {"static_graph": True, "audit_every": 100},
        "static+reserve": {"static_graph": True, "audit_every": 100, "meter_every": reserve},
    }
    loops: dict[str, Callable[[int], None]] = {}
    runs: list[TrainingRun] = []
    for setting, options in settings.items():
        model = make()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss = loss_for(model)
        if options is None:

            def plain(
                step: int, model: torch.nn.Module = model, optimizer: Any = optimizer, loss: Any = loss
            ) -> None:
                loss(batch_at(step)).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            loops[setting] = plain
        else:
            run = TrainingRun(device, model, optimizer, run_id=f"{name}-{setting}", **options)
            run.admit()
            runs.append(run)
            loops[setting] = lambda step, run=run, loss=loss: run.step(batch_at(step), loss, tokens=tokens)  # type: ignore[misc]
    times: dict[str, list[float]] = {setting: [] for setting in settings}
    for step in range(warmup + steps):
        for setting, loop in loops.items():
            started = time.perf_counter()
            loop(step)
            if step >= warmup:
                times[setting].append(time.perf_counter() - started)
    for run in runs:
        run.finish()
    base_mean = statistics.fmean(times["baseline"])
    base_median = statistics.median(times["baseline"])
    print(f"\n{name}: {steps} steps after {warmup} warm-up, reserve K={reserve}")
    print(f"{'setting':16} {'mean ms':>9} {'overhead':>9} {'median ms':>10} {'overhead':>9}")
    for setting, samples in times.items():
        mean, median = statistics.fmean(samples), statistics.median(samples)
        print(
            f"{setting:16} {mean * 1000:9.2f} {100 * (mean / base_mean - 1):8.2f}% "
            f"{median * 1000:10.2f} {100 * (median / base_median - 1):8.2f}%"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="Metering overhead per training step.")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="flexheg-bench-"))
    started = time.perf_counter()
    measure(
        "byte-lm",
        lm_workload(batch=16, context=64),
        args.steps,
        warmup=3,
        reserve=8,
        folder=folder,
        tokens=16 * 64,
    )
    measure("digits-mlp", mlp_workload(), args.steps * 5, warmup=5, reserve=64, folder=folder)
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s; torch {torch.__version__}, {args.threads} thread(s)"
    )


if __name__ == "__main__":
    main()
