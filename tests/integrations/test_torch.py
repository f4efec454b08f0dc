"""Metered training of a small classifier on scikit-learn's digits, on the CPU (and CUDA if present)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="the torch tests need the optional extra flexheg[torch]")
pytest.importorskip("sklearn", reason="the torch tests train on scikit-learn's digits")
pytest.importorskip("safetensors", reason="the torch tests write safetensors files")

import safetensors.torch as safetensors_torch
import torch
from sklearn import datasets  # type: ignore[import-untyped]
from typer.testing import CliRunner

from flexheg.attest.disclosure import present, verify_presentation
from flexheg.cli.verify_model import model as verify_model_command
from flexheg.device.records import IssuedRecord, verify_record
from flexheg.errors import Reason, Rejected
from flexheg.integrations.torch import GraphChanged, MeteringWarning, StepDenied, TrainingRun
from flexheg.integrations.weights import file_digest, state_dict_digest

from .helpers import Setup, provision

BATCH = 64
LAYERS = ((64, 128), (128, 64), (64, 10))
REPO = Path(__file__).resolve().parents[2]

torch.set_num_threads(1)


def step_flop(batch: int = BATCH) -> int:
    """FLOP of one step counted by hand: 2 per multiply-add, forward, weight and input gradients."""
    forward = sum(2 * batch * n_in * n_out for n_in, n_out in LAYERS)
    weight_grads = forward
    input_grads = sum(2 * batch * n_in * n_out for n_in, n_out in LAYERS[1:])
    return forward + weight_grads + input_grads


def make_model(device: str = "cpu") -> torch.nn.Sequential:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for index, (n_in, n_out) in enumerate(LAYERS):
        layers.append(torch.nn.Linear(n_in, n_out))
        if index < len(LAYERS) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(device)


def digits(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    data = datasets.load_digits()
    return (
        torch.tensor(data.data, dtype=torch.float32, device=device) / 16,
        torch.tensor(data.target, device=device),
    )


def loss_for(model: torch.nn.Module) -> Callable[[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    def loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    return loss


def batch_at(inputs: torch.Tensor, labels: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    start = step * BATCH % (len(labels) - BATCH)
    return inputs[start : start + BATCH], labels[start : start + BATCH]


def train(
    setup: Setup, steps: int, *, device: str = "cpu", **options: Any
) -> tuple[IssuedRecord, torch.nn.Module]:
    inputs, labels = digits(device)
    model = make_model(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with TrainingRun(setup.device, model, optimizer, run_id="digits", **options) as run:
        run.add_dataset("sklearn-digits", (inputs, labels))
        for step in range(steps):
            run.step(batch_at(inputs, labels, step), loss_for(model))
        run.evaluate("accuracy", lambda: (model(inputs).argmax(1) == labels).float().mean(), threshold=0.5)
        issued = run.finish(
            holder=setup.holder.public, predicates=["run.flop_total < 1e25", "run.flop_total < 1000"]
        )
    return issued, model


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return provision(tmp_path, cap=10**15)


def test_record_verifies(setup: Setup) -> None:
    issued, model = train(setup, 8)
    record = verify_record(issued.bundle, agreement_payload=setup.agreement_payload)
    assert record.steps == 8
    assert record.weights == state_dict_digest(model.state_dict())
    assert record.evaluations[0].name == "accuracy"
    assert record.datasets[0].samples == 1797
    assert [p.holds for p in record.predicates] == [True, False]


@pytest.mark.parametrize("options", [{}, {"static_graph": True, "meter_every": 3, "audit_every": 2}])
def test_flop_total_matches_independent_count(setup: Setup, options: dict[str, Any]) -> None:
    issued, _ = train(setup, 7, **options)
    evaluation = sum(2 * 1797 * n_in * n_out for n_in, n_out in LAYERS)
    independent = 7 * step_flop() + evaluation
    assert abs(issued.record.flop_total - independent) <= independent // 100
    assert issued.record.flop_total == setup.device.state().runs["digits"].flop_used  # type: ignore[union-attr]


@pytest.mark.parametrize("options", [{}, {"static_graph": True, "meter_every": 4}])
def test_cap_stops_run_at_right_step(tmp_path: Path, options: dict[str, Any]) -> None:
    setup = provision(tmp_path, cap=5 * step_flop())
    inputs, labels = digits()
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with TrainingRun(setup.device, model, optimizer, run_id="capped", **options) as run:
        for step in range(5):
            run.step(batch_at(inputs, labels, step), loss_for(model))
        before = run.weights_digest()
        with pytest.raises(StepDenied) as denied:
            run.step(batch_at(inputs, labels, 5), loss_for(model))
        assert denied.value.step == 6
        assert denied.value.decision.rule == "training-cap"
        assert run.steps == 5
        assert run.weights_digest() == before
        issued = run.finish()
    assert issued.record.flop_total == 5 * step_flop()
    assert issued.record.steps == 5


def test_hidden_flop_still_proves_predicate(setup: Setup) -> None:
    issued, _ = train(setup, 3)
    assert issued.credential is not None
    now = int(time.time())
    presentation = present(
        issued.credential,
        disclose=["predicates/run.flop_total < 1e25"],
        holder_key=setup.holder,
        audience="state-b",
        nonce="n-1",
        now=now,
    )
    verified = verify_presentation(
        presentation, agreement_payload=setup.agreement_payload, audience="state-b", nonce="n-1", now=now
    )
    verified.require_predicate("run.flop_total < 1e25")
    assert verified.flop_total is None
    assert "flop_total" not in verified.claims
    assert str(issued.record.flop_total) not in presentation


def test_replayed_presentation_rejected(setup: Setup) -> None:
    issued, _ = train(setup, 2)
    assert issued.credential is not None
    now = int(time.time())
    presentation = present(
        issued.credential,
        disclose=["flop_total"],
        holder_key=setup.holder,
        audience="state-b",
        nonce="n-1",
        now=now,
    )
    with pytest.raises(Rejected) as rejected:
        verify_presentation(
            presentation, agreement_payload=setup.agreement_payload, audience="state-c", nonce="n-1", now=now
        )
    assert rejected.value.reason is Reason.WRONG_AUDIENCE


def test_model_identity_detects_one_byte(setup: Setup, tmp_path: Path) -> None:
    issued, model = train(setup, 2)
    weights = tmp_path / "model.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(weights))
    record = tmp_path / "record.json"
    record.write_bytes(issued.bundle.to_json())
    agreement = tmp_path / "agreement.json"
    agreement.write_bytes(setup.agreement_payload)
    state_dict = tmp_path / "model.pt"
    torch.save(model.state_dict(), state_dict)
    assert file_digest(weights) == file_digest(state_dict) == issued.record.weights

    import typer  # noqa: PLC0415

    app = typer.Typer()
    app.command("model")(verify_model_command)
    app.command("other")(lambda: None)
    runner = CliRunner()
    arguments = ["model", str(weights), str(record), "--agreement", str(agreement), "--json"]
    assert runner.invoke(app, arguments).exit_code == 0

    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    result = runner.invoke(app, arguments)
    assert result.exit_code == 1
    assert "record-mismatch" in result.output


def test_uncounted_operators_warn(setup: Setup) -> None:
    weight = torch.nn.Parameter(torch.ones(64))
    model = torch.nn.Module()
    model.weight = weight
    optimizer = torch.optim.SGD([weight], lr=0.1)
    inputs, _ = digits()
    with (
        TrainingRun(setup.device, model, optimizer, run_id="elementwise") as run,
        pytest.warns(MeteringWarning),
    ):
        run.step(inputs[:BATCH], lambda batch: (batch * weight).sum())


def test_changing_graph_detected(setup: Setup) -> None:
    inputs, labels = digits()
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = [0]

    def loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        calls[0] += 1
        hidden = model(batch[0])
        if calls[0] > 1:
            hidden = model[-1](model[:-1](batch[0])) + hidden
        return torch.nn.functional.cross_entropy(hidden, batch[1])

    with TrainingRun(
        setup.device, model, optimizer, run_id="dynamic", static_graph=True, audit_every=1
    ) as run:
        run.step(batch_at(inputs, labels, 0), loss)
        with pytest.raises(GraphChanged):
            run.step(batch_at(inputs, labels, 1), loss)
        issued = run.finish()
    assert issued.record.steps == 1


def test_post_training_phase_recorded(setup: Setup) -> None:
    inputs, labels = digits()
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with TrainingRun(setup.device, model, optimizer, run_id="phases") as run:
        run.step(batch_at(inputs, labels, 0), loss_for(model))
        run.step(batch_at(inputs, labels, 1), loss_for(model), phase="post-training")
        issued = run.finish()
    assert set(issued.record.phases) == {"pre-training", "post-training"}
    assert issued.record.phases["post-training"].flop == step_flop()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
def test_cuda_run_matches_cpu_count(setup: Setup) -> None:
    issued, _ = train(setup, 3, device="cuda")
    evaluation = sum(2 * 1797 * n_in * n_out for n_in, n_out in LAYERS)
    assert issued.record.flop_total == 3 * step_flop() + evaluation


@pytest.mark.slow
def test_example_script_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "train_digits.py"), "--dir", str(tmp_path), "--steps", "20"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "released weights match the record: True" in result.stdout
    assert (tmp_path / "record.sd-jwt").exists()
