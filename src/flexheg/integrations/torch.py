"""Metered PyTorch training: every step's FLOP is charged to the guarantee processor first.

Usage::

    with TrainingRun(device, model, optimizer, run_id="run-1") as run:
        for batch in loader:
            run.step(batch, lambda b: loss_fn(model(b[0]), b[1]))
        run.evaluate("accuracy", lambda: accuracy(model), threshold=0.9)
        issued = run.finish(holder=lab_key.public, predicates=["run.flop_total < 1e25"])

:class:`TrainingRun` admits the run on the device, counts the FLOP of each step's forward and
backward pass with :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts as
2 FLOP; matrix products, convolutions and attention are counted, elementwise operators are not),
charges them to the device with :meth:`flexheg.device.Device.meter` and applies the optimizer
step only when the device allows it. A step the device denies raises :class:`StepDenied` and
leaves the weights as they were. Every step goes into a hash-chained transcript (batch digest,
FLOP, phase), with periodic weight digests and evaluation results, and :meth:`TrainingRun.finish`
asks the device for the signed record.

Counting every step under ``FlopCounterMode`` costs Python dispatch time on every operator. With
``static_graph=True`` the run counts the first step of each input signature (phase, batch
shapes, dtypes and devices, training mode, which parameters require gradients) and charges the
same count for later steps of that signature *before* running them. This is exact only when the
FLOP of a step depend on nothing but that signature (no data-dependent control flow, no dynamic
shapes inside the model); ``audit_every`` recounts every N-th step and raises
:class:`GraphChanged` when the count differs. ``meter_every`` charges the device for several
steps of a known signature in one call; a charge the device denies falls back to one step, so
a cap still stops the run at the exact step that would cross it. FLOP charged for steps that
never ran are listed in the transcript as ``unspent``.

The code is device-agnostic: the model and batches may live on any torch device. Batch and
weight digests copy tensors to host memory.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from flexheg.device import Device
from flexheg.device.records import IssuedRecord, Transcript, format_score, request_record
from flexheg.errors import InputError, Reason, Rejected
from flexheg.integrations.weights import state_dict_digest, tensors_digest
from flexheg.rules import Decision, parse_workload
from flexheg.wire import PublicKey

logger = logging.getLogger(__name__)

Batch = torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]
B = TypeVar("B", bound=Batch)

PRE_TRAINING = "pre-training"
POST_TRAINING = "post-training"
SIX_ND_BAND = (1 / 3, 3.0)
"""Counted FLOP outside this ratio to 6·N·D trigger a :class:`MeteringWarning`."""

_COMPUTE_OP_RE = re.compile(r"mm|matmul|conv|attention|einsum|gemm")


class MeteringWarning(UserWarning):
    """The FLOP count of a step looks incomplete (operators counted as zero, or far from 6·N·D)."""


class StepDenied(Rejected):
    """The device denied the FLOP of a step or evaluation; it did not change the model."""

    def __init__(self, run_id: str, step: int, flop: int, metered: int, decision: Decision) -> None:
        rule = decision.rule or "default deny"
        super().__init__(
            Reason.WORKLOAD_DENIED,
            f"the device stopped run {run_id!r} at step {step}: the run has {metered} FLOP metered and "
            f"the step needs {flop} more ({rule}: {decision.reason})",
            expected="a step the active rules allow",
            actual=f"run.flop_total {metered + flop}",
        )
        self.run_id = run_id
        self.step = step
        self.flop = flop
        self.decision = decision


class GraphChanged(InputError):
    """A recount of a static-graph step found another FLOP count than the cached one."""


@dataclass(frozen=True)
class FlopCount:
    """FLOP counted for one call, and the compute-like operators that have no FLOP formula."""

    total: int
    uncounted: tuple[str, ...]


class _OperatorRecorder(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Records the name of every operator that runs, to find the ones counted as zero FLOP."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.seen: set[Any] = set()

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        self.seen.add(func._overloadpacket)
        return func(*args, **(kwargs or {}))


def _cpu_flash_attention(
    query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    return int(sdpa_flop_count(query_shape, key_shape, value_shape))  # type: ignore[no-untyped-call]


def _cpu_flash_attention_backward(
    grad_out_shape: Any,
    query_shape: Any,
    key_shape: Any,
    value_shape: Any,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    return int(sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape))  # type: ignore[no-untyped-call]


def _extra_formulas() -> dict[Any, Any]:
    """FLOP formulas for operators that FlopCounterMode of torch 2.13 counts as zero.

    The CPU flash-attention kernels take query, key and value first, like their CUDA
    counterparts, so the same attention formulas apply (causal masking is not discounted).
    """
    formulas: dict[Any, Any] = {}
    for name, formula in (
        ("_scaled_dot_product_flash_attention_for_cpu", _cpu_flash_attention),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", _cpu_flash_attention_backward),
    ):
        if hasattr(torch.ops.aten, name):
            formulas[getattr(torch.ops.aten, name)] = formula
    return formulas


_EXTRA_FORMULAS = _extra_formulas()


def count_flop(call: Callable[[], Any]) -> tuple[Any, FlopCount]:
    """Run ``call`` under ``FlopCounterMode`` and return its result with the FLOP it used."""
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    recorder = _OperatorRecorder()
    with counter, recorder:
        result = call()
    uncounted = sorted(
        str(op)
        for op in recorder.seen
        if op not in counter.flop_registry and _COMPUTE_OP_RE.search(str(op).split(".")[-1])
    )
    return result, FlopCount(int(counter.get_total_flops()), tuple(uncounted))


def named_tensors(batch: Batch) -> list[tuple[str, torch.Tensor]]:
    """Name the tensors of a batch: ``"0"`` for one tensor, indexes for a sequence, keys for a mapping."""
    if isinstance(batch, torch.Tensor):
        return [("0", batch)]
    if isinstance(batch, Mapping):
        items = [(str(key), value) for key, value in batch.items()]
    else:
        items = [(str(index), value) for index, value in enumerate(batch)]
    if not items or not all(isinstance(value, torch.Tensor) for _, value in items):
        raise InputError("a batch must be a tensor, or a non-empty sequence or mapping of tensors")
    return items


def _samples(tensors: Sequence[tuple[str, torch.Tensor]]) -> int:
    first = tensors[0][1]
    return int(first.shape[0]) if first.dim() > 0 else 1


class TrainingRun:
    """One metered training run on a device; use it as a context manager around the training loop.

    Args:
        device: the guarantee processor that admits and meters the run.
        model: the model being trained; its state dict is digested for the transcript.
        optimizer: applied after each step the device allows.
        run_id: the run's id on the device; a new id per run.
        kind: the workload kind the run is admitted as (``training`` or ``fine-tuning``).
        cluster_size: accelerators working together, a workload fact for the rules.
        interconnect_gbps: interconnect bandwidth per accelerator, when the rules need it.
        static_graph: charge a step's FLOP from the count of the first step of its signature.
        audit_every: with ``static_graph``, recount every N-th step (0: never).
        meter_every: with ``static_graph``, charge the device for up to N steps per call.
        weights_every: add a weight digest to the transcript every N steps (0: only at start and end).
        transcript_path: write the transcript there as JSON Lines when the run finishes.
    """

    def __init__(
        self,
        device: Device,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        run_id: str,
        kind: str = "training",
        cluster_size: int = 1,
        interconnect_gbps: int | None = None,
        static_graph: bool = False,
        audit_every: int = 100,
        meter_every: int = 1,
        weights_every: int = 0,
        transcript_path: Path | None = None,
    ) -> None:
        for name, value in (("audit_every", audit_every), ("weights_every", weights_every)):
            if value < 0:
                raise InputError(f"{name} must be 0 or more, got {value}")
        if meter_every < 1:
            raise InputError(f"meter_every must be 1 or more, got {meter_every}")
        if meter_every > 1 and not static_graph:
            raise InputError("meter_every > 1 charges steps before they run, so it needs static_graph=True")
        self.device = device
        self.model = model
        self.optimizer = optimizer
        self.run_id = run_id
        self.kind = kind
        self.cluster_size = cluster_size
        self.interconnect_gbps = interconnect_gbps
        self.static_graph = static_graph
        self.audit_every = audit_every
        self.meter_every = meter_every
        self.weights_every = weights_every
        self.transcript_path = transcript_path
        self.transcript = Transcript()
        self.steps = 0
        self.metered_total = 0
        self._balance = 0
        self._flop_cache: dict[tuple[Any, ...], int] = {}
        self._parameters = list(model.parameters())
        self._admitted = False
        self._finished = False

    # Lifecycle.

    def __enter__(self) -> Self:
        self.admit()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._finished:
            logger.info("run %s left after %d steps without a record", self.run_id, self.steps)

    def admit(self) -> None:
        """Ask the device to admit the run and start the transcript with the initial weights."""
        if self._admitted:
            raise InputError(f"run {self.run_id!r} is already admitted")
        initial = self.weights_digest()
        descriptor: dict[str, Any] = {
            "kind": self.kind,
            "run_id": self.run_id,
            "flop": 0,
            "cluster_size": self.cluster_size,
            "model_digest": initial,
        }
        if self.interconnect_gbps is not None:
            descriptor["interconnect_gbps"] = self.interconnect_gbps
        result = self.device.admit(parse_workload(descriptor, what="workload"))
        if not result.decision.allowed:
            raise StepDenied(self.run_id, 0, 0, result.flop_total, result.decision)
        if result.flop_total != 0:
            raise InputError(
                f"run {self.run_id!r} already has {result.flop_total} FLOP metered on this device; "
                "use a new run id for a new run"
            )
        self._admitted = True
        parameters = sum(p.numel() for p in self._parameters)
        self.transcript.append(
            {"kind": "start", "run_id": self.run_id, "parameters": parameters, "admitted_flop": "0"}
        )
        self.transcript.append({"kind": "weights", "step": 0, "digest": initial})
        logger.info("admitted run %s (%d parameters)", self.run_id, parameters)

    def _check_open(self) -> None:
        if not self._admitted:
            raise InputError(f"run {self.run_id!r} is not admitted; use it in a 'with' block or call admit()")
        if self._finished:
            raise InputError(f"run {self.run_id!r} is finished; start a new run")

    # Digests.

    def weights_digest(self) -> str:
        """Return the canonical digest of the model's current state dict."""
        return state_dict_digest(self.model.state_dict())

    def add_dataset(self, name: str, tensors: Batch, *, samples: int | None = None) -> str:
        """Declare a data set the run trains on; the transcript keeps its digest and sample count."""
        self._check_open()
        named = named_tensors(tensors)
        digest = tensors_digest(named)
        count = samples if samples is not None else _samples(named)
        self.transcript.append({"kind": "dataset", "name": name, "digest": digest, "samples": count})
        return digest

    # Charging the device.

    def _charge(self, flop: int, step: int, *, reserve: bool = False) -> None:
        """Charge ``flop`` to the run, from the reserved balance first; raise StepDenied if denied.

        With ``reserve``, one device call charges up to ``meter_every`` times ``flop``, and the
        balance pays for the next steps of the same size.
        """
        if self._balance >= flop:
            self._balance -= flop
            return
        needed = flop - self._balance
        request = max(needed, flop * self.meter_every - self._balance) if reserve else needed
        result = self.device.meter(self.run_id, request)
        if not result.decision.allowed and request > needed:
            request = needed
            result = self.device.meter(self.run_id, request)
        if not result.decision.allowed:
            raise StepDenied(self.run_id, step, needed, result.flop_total, result.decision)
        self._balance += request - flop
        self.metered_total = result.flop_total

    def _signature(self, phase: str, tensors: Sequence[tuple[str, torch.Tensor]]) -> tuple[Any, ...]:
        return (
            phase,
            self.model.training,
            tuple((name, t.dtype, tuple(t.shape), t.device.type) for name, t in tensors),
            tuple(p.requires_grad for p in self._parameters),
        )

    def _cross_check(self, count: FlopCount, samples: int, passes: int) -> None:
        """Warn when a count misses operators or is far from ``2 · passes · N · D``."""
        if count.uncounted:
            warnings.warn(
                f"run {self.run_id}: operators {', '.join(count.uncounted)} have no FLOP formula and "
                "were counted as zero FLOP; register them with FlopCounterMode(custom_mapping=...)",
                MeteringWarning,
                stacklevel=3,
            )
        trainable = sum(p.numel() for p in self._parameters if p.requires_grad)
        estimate = 2 * passes * trainable * samples
        if estimate == 0:
            return
        ratio = count.total / estimate
        logger.debug(
            "run %s: counted %d FLOP, %d·N·D = %d (ratio %.3f)",
            self.run_id,
            count.total,
            2 * passes,
            estimate,
            ratio,
        )
        if count.total == 0 or not SIX_ND_BAND[0] <= ratio <= SIX_ND_BAND[1]:
            warnings.warn(
                f"run {self.run_id}: counted {count.total} FLOP, {ratio:.2f} times the {2 * passes}·N·D "
                f"estimate {estimate} (N={trainable} trainable parameters, D={samples}); "
                "operators may be counted as zero",
                MeteringWarning,
                stacklevel=3,
            )

    # Training.

    def step(
        self,
        batch: B,
        loss_fn: Callable[[B], torch.Tensor],
        *,
        phase: str = PRE_TRAINING,
        tokens: int | None = None,
    ) -> torch.Tensor:
        """Run one metered step: forward and backward through ``loss_fn``, then the optimizer step.

        ``tokens`` is D in the 6·N·D cross-check and the sample count in the transcript; it
        defaults to the first dimension of the batch's first tensor. Returns the detached loss.

        Raises:
            StepDenied: the device denied the step's FLOP; the weights are unchanged.
            GraphChanged: an audit recount disagrees with the static-graph count.
        """
        self._check_open()
        tensors = named_tensors(batch)
        samples = tokens if tokens is not None else _samples(tensors)
        number = self.steps + 1

        def forward_backward() -> torch.Tensor:
            loss = loss_fn(batch)
            loss.backward()  # type: ignore[no-untyped-call]
            return loss

        key = self._signature(phase, tensors) if self.static_graph else None
        cached = self._flop_cache.get(key) if key is not None else None
        if cached is not None:
            # The FLOP are known, so the device decides before the step runs.
            self._charge(cached, number, reserve=True)
            flop = cached
            if self.audit_every and number % self.audit_every == 0:
                loss, count = count_flop(forward_backward)
                if count.total != cached:
                    self.optimizer.zero_grad(set_to_none=True)
                    self._balance += cached
                    raise GraphChanged(
                        f"run {self.run_id}: step {number} used {count.total} FLOP, but steps of the same "
                        f"signature were charged {cached}; the graph is not static, so pass "
                        "static_graph=False"
                    )
            else:
                loss = forward_backward()
        else:
            loss, count = count_flop(forward_backward)
            flop = count.total
            self._cross_check(count, samples, passes=3)
            try:
                self._charge(flop, number)
            except StepDenied:
                self.optimizer.zero_grad(set_to_none=True)
                raise
            if key is not None:
                self._flop_cache[key] = flop

        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps = number
        self.transcript.append(
            {
                "kind": "step",
                "step": number,
                "phase": phase,
                "batch": tensors_digest(tensors),
                "samples": samples,
                "flop": str(flop),
            }
        )
        if self.weights_every and number % self.weights_every == 0:
            self.transcript.append({"kind": "weights", "step": number, "digest": self.weights_digest()})
        detached: torch.Tensor = loss.detach()
        return detached

    def evaluate(
        self,
        name: str,
        score_fn: Callable[[], float | torch.Tensor],
        *,
        threshold: float,
        goal: str = "max",
    ) -> bool:
        """Run a metered evaluation at the current checkpoint and record its result.

        ``score_fn`` runs under ``torch.no_grad()``; its FLOP are charged to the run. The
        evaluation passes when the score is at least ``threshold`` (``goal="max"``) or at most
        it (``goal="min"``). Returns whether it passed.
        """
        self._check_open()
        if goal not in ("max", "min"):
            raise InputError(f"goal {goal!r} is invalid; use 'max' or 'min'")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                raw, count = count_flop(score_fn)
        finally:
            self.model.train(was_training)
        self._charge(count.total, self.steps)
        score = float(raw.item()) if isinstance(raw, torch.Tensor) else float(raw)
        entry = {
            "kind": "evaluation",
            "step": self.steps,
            "name": name,
            "score": format_score(score),
            "threshold": format_score(threshold),
            "goal": goal,
            "weights": self.weights_digest(),
            "flop": str(count.total),
        }
        self.transcript.append(entry)
        return score >= threshold if goal == "max" else score <= threshold

    def finish(self, *, holder: PublicKey | None = None, predicates: Sequence[str] = ()) -> IssuedRecord:
        """Close the transcript with the final weights and ask the device for the signed record."""
        self._check_open()
        if self._balance:
            self.transcript.append({"kind": "unspent", "flop": str(self._balance)})
            self._balance = 0
        self.transcript.append({"kind": "weights", "step": self.steps, "digest": self.weights_digest()})
        if self.transcript_path is not None:
            self.transcript_path.write_bytes(self.transcript.to_jsonl())
        self._finished = True
        issued = request_record(self.device, self.transcript, holder=holder, predicates=predicates)
        logger.info("run %s finished: %d steps, %d FLOP", self.run_id, self.steps, issued.record.flop_total)
        return issued
