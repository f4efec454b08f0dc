"""Signed training records: the transcript chain, the canonical weight digest and the record.

A training run on a device leaves three things behind:

* a *transcript*, a hash chain of entries written by the host while it trains (the model's
  parameter count, the data sets, one entry per step with the batch digest and the step's FLOP,
  periodic weight digests, evaluation results at checkpoints);
* the device's own *metered total* for the run, accumulated by :func:`flexheg.device.meter`;
* at the end, a :class:`TrainingRecord` that the device signs with its identity key. The device
  checks the transcript chain, checks that the FLOP the transcript lists equals its own metered
  total, computes the summary (phases, evaluations, final weights) from the transcript itself,
  and evaluates the predicates the holder asked for on its own values.

The record is issued twice: as a DSSE envelope (the full record) and as an SD-JWT (RFC 9901)
whose claims the holder can disclose one by one; :mod:`flexheg.attest.disclosure` presents and
verifies the SD-JWT.

Invariants that :func:`issue_record` enforces:

* the record's ``flop_total`` is the device's metered total for the run, never a caller's number;
* the transcript's FLOP (admission, steps, evaluations, unspent reservations) sums to that total;
* the record's ``weights`` is the last transcript entry, a weight digest taken after the last step.

NOTE: the host writes the transcript, so batch digests, evaluation scores and weight digests are
the host's claims. The device binds them to its metered compute and signs them; it cannot see
the data or the weights.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import itertools
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Self

from flexheg.device._agreement import Agreement
from flexheg.device._device import Device
from flexheg.device._processor import _check_enabled, mode_at
from flexheg.device._state import DeviceState, Mode
from flexheg.device._statements import DeviceCertificate
from flexheg.errors import InputError, Reason, Rejected
from flexheg.rules import ERROR, MAX_FLOP, compile_expression, parse_expression
from flexheg.wire import (
    MAX_SAFE_INTEGER,
    Envelope,
    Fields,
    PublicKey,
    SigningKey,
    Statement,
    encode,
    loads_strict,
    parse_statement,
    sha256_digest,
)

logger = logging.getLogger(__name__)

# Canonical weight digest.

WEIGHTS_TYPE = "flexheg.dev/weights/v1"

DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
    "C64": 8,
}
"""Element sizes in bytes of the dtypes a weight digest accepts, named as safetensors names them."""


@dataclass(frozen=True)
class TensorDigest:
    """One tensor of a weight digest: its name, dtype, shape and the SHA-256 of its raw bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "data": self.data}


def tensor_digest(name: str, dtype: str, shape: Sequence[int], data: bytes | memoryview) -> TensorDigest:
    """Digest one tensor given its raw bytes (C order, little-endian), checking size against shape."""
    size = DTYPE_SIZES.get(dtype)
    if size is None:
        raise InputError(
            f"tensor {name!r}: dtype {dtype!r} is not supported; use one of {sorted(DTYPE_SIZES)}"
        )
    expected = size
    for dimension in shape:
        if dimension < 0:
            raise InputError(f"tensor {name!r}: negative dimension in shape {list(shape)}")
        expected *= dimension
    length = data.nbytes if isinstance(data, memoryview) else len(data)
    if length != expected:
        raise InputError(
            f"tensor {name!r}: {length} bytes of data, but {dtype} {list(shape)} needs {expected}"
        )
    return TensorDigest(name, dtype, tuple(shape), "sha256:" + hashlib.sha256(data).hexdigest())


def weights_digest(tensors: Iterable[TensorDigest]) -> str:
    """Return the canonical digest of a set of named tensors.

    The digest is SHA-256 over the canonical JSON (RFC 8785) of
    ``{"type": "flexheg.dev/weights/v1", "tensors": [...]}``, where the tensors are sorted by
    name (Unicode code point order) and each is ``{"name", "dtype", "shape", "data"}`` with
    ``data`` the ``sha256:`` digest of the tensor's raw bytes in C order, little-endian. Two
    files with the same tensors therefore have the same digest whatever their container format.
    """
    ordered = sorted(tensors, key=lambda t: t.name)
    if not ordered:
        raise InputError("a weight digest needs at least one tensor; the state dict is empty")
    for previous, current in itertools.pairwise(ordered):
        if previous.name == current.name:
            raise InputError(f"tensor name {current.name!r} appears twice")
    manifest = {"type": WEIGHTS_TYPE, "tensors": [t.to_dict() for t in ordered]}
    return sha256_digest(encode(manifest))


# The transcript.

TRANSCRIPT_GENESIS = sha256_digest(b"flexheg.dev/transcript/v1")
"""Head of an empty transcript."""

ENTRY_KINDS = ("start", "dataset", "step", "weights", "evaluation", "unspent")
GOALS = ("max", "min")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_SCORE_RE = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?")
MAX_PREDICATES = 32


def _check_name(value: str, what: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise InputError(
            f"{what}: {value!r} is not a valid name; use 1-64 letters, digits, '_', '.', ':' or '-'"
        )
    return value


def _check_score(value: str, what: str) -> Decimal:
    if not _SCORE_RE.fullmatch(value):
        raise InputError(f"{what}: {value!r} is not a decimal number such as 0.95 or 1e-3")
    return Decimal(value)


def format_score(value: float | int | str) -> str:
    """Write a score as the decimal text that transcript entries carry (floats are not canonical)."""
    text = value if isinstance(value, str) else repr(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise InputError(f"score {value!r} is not a number") from None
    if not number.is_finite():
        raise InputError(f"score {value!r} is not finite")
    _check_score(text, "score")
    return text


def parse_entry(value: object, *, where: str) -> dict[str, Any]:
    """Validate one transcript entry and return it in canonical form."""
    fields = Fields(value, where)
    kind = fields.str("kind")
    entry: dict[str, Any] = {"kind": kind}
    if kind == "start":
        entry["run_id"] = fields.str("run_id")
        entry["parameters"] = fields.int("parameters", minimum=0, maximum=MAX_SAFE_INTEGER)
        entry["admitted_flop"] = str(fields.big_int("admitted_flop"))
    elif kind == "dataset":
        entry["name"] = _check_name(fields.str("name"), fields.path("name"))
        entry["digest"] = fields.digest("digest")
        entry["samples"] = fields.int("samples", minimum=0, maximum=MAX_SAFE_INTEGER)
    elif kind == "step":
        entry["step"] = fields.int("step", minimum=1, maximum=MAX_SAFE_INTEGER)
        entry["phase"] = _check_name(fields.str("phase"), fields.path("phase"))
        entry["batch"] = fields.digest("batch")
        entry["samples"] = fields.int("samples", minimum=0, maximum=MAX_SAFE_INTEGER)
        entry["flop"] = str(fields.big_int("flop"))
    elif kind == "weights":
        entry["step"] = fields.int("step", minimum=0, maximum=MAX_SAFE_INTEGER)
        entry["digest"] = fields.digest("digest")
    elif kind == "evaluation":
        entry["step"] = fields.int("step", minimum=0, maximum=MAX_SAFE_INTEGER)
        entry["name"] = _check_name(fields.str("name"), fields.path("name"))
        entry["score"] = fields.str("score")
        entry["threshold"] = fields.str("threshold")
        _check_score(entry["score"], fields.path("score"))
        _check_score(entry["threshold"], fields.path("threshold"))
        entry["goal"] = fields.str("goal")
        if entry["goal"] not in GOALS:
            raise InputError(f"{fields.path('goal')}: {entry['goal']!r} is not 'max' or 'min'")
        entry["weights"] = fields.digest("weights")
        entry["flop"] = str(fields.big_int("flop"))
    elif kind == "unspent":
        entry["flop"] = str(fields.big_int("flop"))
    else:
        raise InputError(
            f"{where}.kind: unknown entry kind {kind!r}; expected one of {', '.join(ENTRY_KINDS)}"
        )
    fields.done()
    for name in ("flop", "admitted_flop"):
        if name in entry and int(entry[name]) > MAX_FLOP:
            raise InputError(f"{where}.{name}: {entry[name]} is above the maximum 1e32")
    return entry


def chain_head(previous: str, entry: Mapping[str, Any]) -> str:
    """Return the transcript head after appending ``entry`` to a transcript whose head is ``previous``."""
    return sha256_digest(encode({"previous": previous, "entry": dict(entry)}))


class Transcript:
    """A hash-chained list of transcript entries; ``head`` commits to every entry in order."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.head = TRANSCRIPT_GENESIS

    def append(self, entry: Mapping[str, Any]) -> str:
        """Validate ``entry``, append it and return the new head."""
        checked = parse_entry(dict(entry), where=f"transcript entry {len(self.entries)}")
        self.entries.append(checked)
        self.head = chain_head(self.head, checked)
        return self.head

    def __len__(self) -> int:
        return len(self.entries)

    def to_jsonl(self) -> bytes:
        """Return the entries as JSON Lines, one canonical JSON entry per line."""
        return b"".join(encode(entry) + b"\n" for entry in self.entries)

    @classmethod
    def from_entries(cls, entries: Iterable[object], *, what: str = "transcript") -> Transcript:
        transcript = cls()
        for index, entry in enumerate(entries):
            checked = parse_entry(entry, where=f"{what} entry {index}")
            transcript.entries.append(checked)
            transcript.head = chain_head(transcript.head, checked)
        return transcript

    @classmethod
    def from_jsonl(cls, data: bytes, *, what: str = "transcript") -> Transcript:
        lines = [line for line in data.split(b"\n") if line.strip()]
        return cls.from_entries(
            (loads_strict(line, what=f"{what} line {index + 1}") for index, line in enumerate(lines)),
            what=what,
        )


def verify_transcript(entries: Sequence[object], head: str, *, length: int | None = None) -> Transcript:
    """Rebuild the chain over ``entries`` and check that it ends at ``head``.

    Raises:
        Rejected: ``record-mismatch`` when the entries do not produce ``head`` or ``length``.
        InputError: an entry is malformed.
    """
    transcript = Transcript.from_entries(entries)
    if length is not None and len(transcript) != length:
        raise Rejected(
            Reason.RECORD_MISMATCH,
            "the transcript has another number of entries than the record",
            expected=str(length),
            actual=str(len(transcript)),
        )
    if transcript.head != head:
        raise Rejected(
            Reason.RECORD_MISMATCH,
            "the transcript does not hash to the head the record commits to",
            expected=head,
            actual=transcript.head,
        )
    return transcript


@dataclass(frozen=True)
class Evaluation:
    """One evaluation result at a checkpoint; ``passed`` is computed from score, threshold and goal."""

    name: str
    step: int
    score: str
    threshold: str
    goal: str
    passed: bool
    weights: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Evaluation:
        fields = Fields(value, where)
        evaluation = cls(
            name=_check_name(fields.str("name"), fields.path("name")),
            step=fields.int("step", minimum=0, maximum=MAX_SAFE_INTEGER),
            score=fields.str("score"),
            threshold=fields.str("threshold"),
            goal=fields.str("goal"),
            passed=fields.bool("passed"),
            weights=fields.digest("weights"),
        )
        fields.done()
        return evaluation


@dataclass(frozen=True)
class Phase:
    """Totals of one training phase (for example ``pre-training`` or ``post-training``)."""

    steps: int
    samples: int
    flop: int

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "samples": self.samples, "flop": str(self.flop)}

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Phase:
        fields = Fields(value, where)
        phase = cls(
            steps=fields.int("steps", minimum=0, maximum=MAX_SAFE_INTEGER),
            samples=fields.int("samples", minimum=0, maximum=MAX_SAFE_INTEGER),
            flop=fields.big_int("flop"),
        )
        fields.done()
        return phase


@dataclass(frozen=True)
class Dataset:
    """A data set the run declared: its name, digest and number of samples."""

    name: str
    digest: str
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Dataset:
        fields = Fields(value, where)
        dataset = cls(
            name=_check_name(fields.str("name"), fields.path("name")),
            digest=fields.digest("digest"),
            samples=fields.int("samples", minimum=0, maximum=MAX_SAFE_INTEGER),
        )
        fields.done()
        return dataset


@dataclass(frozen=True)
class TranscriptSummary:
    """What a complete transcript says about its run, computed entry by entry."""

    run_id: str
    parameters: int
    datasets: tuple[Dataset, ...]
    phases: dict[str, Phase]
    evaluations: tuple[Evaluation, ...]
    steps: int
    weights: str
    flop: int
    unspent_flop: int
    head: str
    length: int

    @property
    def evaluations_passed(self) -> tuple[str, ...]:
        """Names of the evaluations whose latest result passed, sorted."""
        latest: dict[str, bool] = {}
        for evaluation in self.evaluations:
            latest[evaluation.name] = evaluation.passed
        return tuple(sorted(name for name, passed in latest.items() if passed))


def _passed(score: str, threshold: str, goal: str) -> bool:
    return Decimal(score) >= Decimal(threshold) if goal == "max" else Decimal(score) <= Decimal(threshold)


def summarize(transcript: Transcript) -> TranscriptSummary:
    """Check the structure of a complete transcript and compute its summary.

    Structure: exactly one ``start`` entry, first; steps numbered 1, 2, 3, ... without gaps;
    ``weights`` and ``evaluation`` entries name the number of steps taken so far; data set names
    unique; the last entry a ``weights`` entry (the final weights).
    """
    entries = transcript.entries
    if not entries or entries[0]["kind"] != "start":
        raise InputError("transcript: the first entry must be a 'start' entry")
    start = entries[0]
    flop = int(start["admitted_flop"])
    unspent = 0
    steps = 0
    datasets: dict[str, Dataset] = {}
    phases: dict[str, list[int]] = {}
    evaluations: list[Evaluation] = []
    for index, entry in enumerate(entries[1:], start=1):
        where = f"transcript entry {index}"
        kind = entry["kind"]
        if kind == "start":
            raise InputError(f"{where}: a second 'start' entry; a transcript covers one run")
        if kind == "dataset":
            if entry["name"] in datasets:
                raise InputError(f"{where}: data set {entry['name']!r} is declared twice")
            datasets[entry["name"]] = Dataset(entry["name"], entry["digest"], entry["samples"])
        elif kind == "step":
            if entry["step"] != steps + 1:
                raise InputError(f"{where}: step {entry['step']} follows step {steps}; steps have no gaps")
            steps += 1
            totals = phases.setdefault(entry["phase"], [0, 0, 0])
            totals[0] += 1
            totals[1] += entry["samples"]
            totals[2] += int(entry["flop"])
            flop += int(entry["flop"])
        elif kind in ("weights", "evaluation"):
            if entry["step"] != steps:
                raise InputError(f"{where}: names step {entry['step']}, but {steps} steps were taken")
            if kind == "evaluation":
                passed = _passed(entry["score"], entry["threshold"], entry["goal"])
                evaluations.append(
                    Evaluation(
                        entry["name"],
                        steps,
                        entry["score"],
                        entry["threshold"],
                        entry["goal"],
                        passed,
                        entry["weights"],
                    )
                )
                flop += int(entry["flop"])
        else:
            unspent += int(entry["flop"])
            flop += int(entry["flop"])
    last = entries[-1]
    if last["kind"] != "weights":
        raise InputError(
            "transcript: the last entry must be the final 'weights' entry, taken after the last step"
        )
    return TranscriptSummary(
        run_id=start["run_id"],
        parameters=start["parameters"],
        datasets=tuple(datasets.values()),
        phases={name: Phase(*totals) for name, totals in sorted(phases.items())},
        evaluations=tuple(evaluations),
        steps=steps,
        weights=last["digest"],
        flop=flop,
        unspent_flop=unspent,
        head=transcript.head,
        length=len(entries),
    )


# The record.


@dataclass(frozen=True)
class Predicate:
    """A condition on the run, in the ruleset language, and whether it holds for this record."""

    when: str
    holds: bool

    def to_dict(self) -> dict[str, Any]:
        return {"when": self.when, "holds": self.holds}

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Predicate:
        fields = Fields(value, where)
        predicate = cls(fields.str("when"), fields.bool("holds"))
        fields.done()
        return predicate


@dataclass(frozen=True)
class TrainingRecord(Statement):
    """The device's signed record of one training run.

    ``flop_total`` is the device's metered total; everything under ``transcript_*``, ``weights``,
    ``parameters``, ``datasets``, ``phases`` and ``evaluations`` is computed by the device from
    the transcript that hashes to ``transcript_head``. ``holder`` is the key that may present the
    record's SD-JWT.
    """

    TYPE = "flexheg.dev/training-record/v1"

    device_id: str
    agreement: str
    time: int
    mode: str
    ruleset_version: int
    ruleset_digest: str | None
    run_id: str
    kind: str
    cluster_size: int
    flop_total: int
    transcript_head: str
    transcript_length: int
    steps: int
    weights: str
    parameters: int
    datasets: tuple[Dataset, ...]
    phases: dict[str, Phase]
    evaluations: tuple[Evaluation, ...]
    predicates: tuple[Predicate, ...]
    holder: PublicKey | None

    def body(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "agreement": self.agreement,
            "time": self.time,
            "mode": self.mode,
            "ruleset_version": self.ruleset_version,
            "ruleset_digest": self.ruleset_digest,
            "run_id": self.run_id,
            "kind": self.kind,
            "cluster_size": self.cluster_size,
            "flop_total": str(self.flop_total),
            "transcript_head": self.transcript_head,
            "transcript_length": self.transcript_length,
            "steps": self.steps,
            "weights": self.weights,
            "parameters": self.parameters,
            "datasets": [d.to_dict() for d in self.datasets],
            "phases": {name: phase.to_dict() for name, phase in sorted(self.phases.items())},
            "evaluations": [e.to_dict() for e in self.evaluations],
            "predicates": [p.to_dict() for p in self.predicates],
            "holder": None if self.holder is None else self.holder.to_dict(),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        ruleset_digest = fields.optional_raw("ruleset_digest")
        holder = fields.optional_raw("holder")
        phases_fields = fields.object("phases")
        phases = {
            _check_name(name, phases_fields.path(name)): Phase.from_dict(
                phases_fields.raw(name), where=phases_fields.path(name)
            )
            for name in sorted(phases_fields._value)
        }
        phases_fields.done()
        record = cls(
            device_id=fields.str("device_id"),
            agreement=fields.digest("agreement"),
            time=fields.int("time", minimum=0, maximum=MAX_SAFE_INTEGER),
            mode=fields.str("mode"),
            ruleset_version=fields.int("ruleset_version", minimum=0, maximum=MAX_SAFE_INTEGER),
            ruleset_digest=None if ruleset_digest is None else fields.digest("ruleset_digest"),
            run_id=fields.str("run_id"),
            kind=fields.str("kind"),
            cluster_size=fields.int("cluster_size", minimum=1, maximum=MAX_SAFE_INTEGER),
            flop_total=fields.big_int("flop_total"),
            transcript_head=fields.digest("transcript_head"),
            transcript_length=fields.int("transcript_length", minimum=1, maximum=MAX_SAFE_INTEGER),
            steps=fields.int("steps", minimum=0, maximum=MAX_SAFE_INTEGER),
            weights=fields.digest("weights"),
            parameters=fields.int("parameters", minimum=0, maximum=MAX_SAFE_INTEGER),
            datasets=tuple(
                Dataset.from_dict(item, where=f"{fields.path('datasets')}[{index}]")
                for index, item in enumerate(fields.list("datasets"))
            ),
            phases=phases,
            evaluations=tuple(
                Evaluation.from_dict(item, where=f"{fields.path('evaluations')}[{index}]")
                for index, item in enumerate(fields.list("evaluations"))
            ),
            predicates=tuple(
                Predicate.from_dict(item, where=f"{fields.path('predicates')}[{index}]")
                for index, item in enumerate(fields.list("predicates"))
            ),
            holder=None if holder is None else PublicKey.from_dict(holder, where=fields.path("holder")),
        )
        fields.done()
        return record


def evaluate_predicates(texts: Sequence[str], facts: Mapping[str, Any]) -> tuple[Predicate, ...]:
    """Evaluate each predicate text on ``facts``; a predicate must be decidable on them."""
    if len(texts) > MAX_PREDICATES:
        raise InputError(f"{len(texts)} predicates requested; the maximum is {MAX_PREDICATES}")
    if len(set(texts)) != len(texts):
        raise InputError("a predicate is requested twice; list each once")
    results = []
    for index, text in enumerate(texts):
        condition = compile_expression(parse_expression(text, where=f"predicate {index + 1}"))
        value = condition(facts)
        if value is ERROR:
            raise InputError(
                f"predicate {text!r} needs a fact the record does not have; it may use run.flop_total, "
                "workload.evals_passed and the workload facts the run was admitted with"
            )
        results.append(Predicate(text, bool(value)))
    return tuple(results)


# SD-JWT issuance (RFC 9901). The holder and verifier side is flexheg.attest.disclosure.

SD_JWT_TYP = "training-record+sd-jwt"
SD_ALG = "sha-256"
JWS_ALG = "EdDSA"
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
DISCLOSED_CLAIMS = (
    "record",
    "run_id",
    "kind",
    "cluster_size",
    "mode",
    "ruleset_version",
    "ruleset_digest",
    "flop_total",
    "steps",
    "parameters",
    "weights",
    "transcript",
    "datasets",
    "phases",
)
"""Top-level claims of a training-record SD-JWT, each disclosed on its own."""

NESTED_CLAIMS = ("evaluations", "predicates")
"""Always-present objects whose members (one evaluation or one predicate each) are disclosed one by one."""

DECOY_BLOCK = 4


def b64url_encode(data: bytes) -> str:
    """Encode base64url without padding (RFC 7515, section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, what: str) -> bytes:
    """Decode unpadded base64url, rejecting padding, other alphabets and non-canonical trailing bits."""
    if not isinstance(text, str) or not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise InputError(f"{what}: not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InputError(f"{what}: not unpadded base64url") from None
    if b64url_encode(data) != text:
        raise InputError(f"{what}: non-canonical base64url")
    return data


def public_jwk(key: PublicKey) -> dict[str, str]:
    """Return the JWK (RFC 8037) of an Ed25519 public key."""
    raw = bytes.fromhex(key.key.keyval["public"])
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}


def json_bytes(value: Any) -> bytes:
    """Return the bytes flexheg writes for a JOSE header, payload or disclosure (RFC 8785 JSON)."""
    return encode(value)


def sign_jws(header: Mapping[str, Any], payload: Mapping[str, Any], key: SigningKey) -> str:
    """Sign a compact JWS (RFC 7515) with an Ed25519 key; ``header`` must name ``alg`` EdDSA."""
    signing_input = f"{b64url_encode(json_bytes(dict(header)))}.{b64url_encode(json_bytes(dict(payload)))}"
    signature = bytes.fromhex(key.sign(signing_input.encode("ascii")))
    return f"{signing_input}.{b64url_encode(signature)}"


def disclosure_digest(disclosure: str) -> str:
    """Return the SD-JWT digest of a disclosure: base64url SHA-256 over its ASCII text."""
    return b64url_encode(hashlib.sha256(disclosure.encode("ascii")).digest())


def make_disclosure(name: str, value: Any) -> tuple[str, str]:
    """Make an object-property disclosure ``[salt, name, value]`` with a 128-bit random salt."""
    salt = b64url_encode(secrets.token_bytes(16))
    disclosure = b64url_encode(json_bytes([salt, name, value]))
    return disclosure, disclosure_digest(disclosure)


def _decoys(count: int) -> list[str]:
    """Decoy digests that pad a list of ``count`` digests to a multiple of the block, at least one."""
    padding = DECOY_BLOCK - count % DECOY_BLOCK
    return [b64url_encode(hashlib.sha256(secrets.token_bytes(32)).digest()) for _ in range(padding)]


def record_claims(record: TrainingRecord, record_digest: str) -> dict[str, Any]:
    """Return the selectively disclosable claims of a record, keyed by claim name."""
    body = record.body()
    return {
        "record": record_digest,
        "run_id": body["run_id"],
        "kind": body["kind"],
        "cluster_size": body["cluster_size"],
        "mode": body["mode"],
        "ruleset_version": body["ruleset_version"],
        "ruleset_digest": body["ruleset_digest"],
        "flop_total": body["flop_total"],
        "steps": body["steps"],
        "parameters": body["parameters"],
        "weights": body["weights"],
        "transcript": {"head": body["transcript_head"], "length": body["transcript_length"]},
        "datasets": body["datasets"],
        "phases": body["phases"],
    }


def evaluation_key(evaluation: Evaluation) -> str:
    """Name of an evaluation's claim inside ``evaluations``: ``NAME@STEP``."""
    return f"{evaluation.name}@{evaluation.step}"


def issue_sd_jwt(
    record: TrainingRecord, record_digest: str, certificate: Envelope, identity_key: SigningKey
) -> str:
    """Issue the SD-JWT of a record: the signed JWT followed by every disclosure, ``~``-separated."""
    if record.holder is None:
        raise InputError("an SD-JWT needs a holder key for key binding; pass the holder's public key")
    disclosures: list[str] = []

    def disclose_all(claims: Mapping[str, Any]) -> list[str]:
        digests = []
        for name, value in claims.items():
            disclosure, digest = make_disclosure(name, value)
            disclosures.append(disclosure)
            digests.append(digest)
        return digests

    top = disclose_all(record_claims(record, record_digest))
    evaluations = disclose_all(
        {
            evaluation_key(e): {k: v for k, v in e.to_dict().items() if k not in ("name", "step")}
            for e in record.evaluations
        }
    )
    predicates = disclose_all({p.when: p.holds for p in record.predicates})
    payload = {
        "iss": record.device_id,
        "iat": record.time,
        "vct": TrainingRecord.TYPE,
        "agreement": record.agreement,
        "device_certificate": certificate.to_dict(),
        "cnf": {"jwk": public_jwk(record.holder)},
        "_sd_alg": SD_ALG,
        "_sd": sorted(top),
        "evaluations": {"_sd": sorted(evaluations + _decoys(len(evaluations)))},
        "predicates": {"_sd": sorted(predicates + _decoys(len(predicates)))},
    }
    header = {"alg": JWS_ALG, "typ": SD_JWT_TYP, "kid": identity_key.keyid}
    jwt = sign_jws(header, payload, identity_key)
    return "~".join([jwt, *disclosures]) + "~"


# Issuing and verifying records.


@dataclass(frozen=True)
class RecordBundle:
    """A signed record with the manufacturer's certificate of the device that signed it."""

    record: Envelope
    certificate: Envelope

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record.to_dict(), "certificate": self.certificate.to_dict()}

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, *, what: str) -> RecordBundle:
        fields = Fields(loads_strict(data, what=what), what)
        bundle = cls(
            record=Envelope.from_dict(fields.raw("record"), what=fields.path("record")),
            certificate=Envelope.from_dict(fields.raw("certificate"), what=fields.path("certificate")),
        )
        fields.done()
        return bundle


@dataclass(frozen=True)
class IssuedRecord:
    """What the device returns at the end of a run: the record bundle and, with a holder, its SD-JWT."""

    bundle: RecordBundle
    record: TrainingRecord
    credential: str | None


def issue_record(
    state: DeviceState | None,
    identity_key: SigningKey,
    transcript: Transcript,
    now: int,
    *,
    holder: PublicKey | None = None,
    predicates: Sequence[str] = (),
) -> tuple[DeviceState, IssuedRecord]:
    """Sign the record of the run that ``transcript`` describes.

    Steps:
      1. the device is enabled (``device-disabled``);
      2. the transcript is well-formed and complete (input error otherwise);
      3. its run was admitted on this device (``workload-denied``);
      4. the FLOP it lists equals the device's metered total for the run (``record-mismatch``);
      5. the predicates are evaluated on the device's own values;
      6. the record is signed as a DSSE envelope and, with a holder key, as an SD-JWT.
    """
    # Step 1.
    state = _check_enabled(state)

    # Step 2.
    summary = summarize(transcript)

    # Step 3.
    account = state.runs.get(summary.run_id)
    if account is None:
        raise Rejected(
            Reason.WORKLOAD_DENIED,
            f"run {summary.run_id!r} was never admitted on this device",
            expected="an admitted run",
            actual=summary.run_id,
        )

    # Step 4.
    if summary.flop != account.flop_used:
        raise Rejected(
            Reason.RECORD_MISMATCH,
            f"the transcript of run {summary.run_id!r} lists other FLOP than the device metered",
            expected=f"{account.flop_used} FLOP metered by the device",
            actual=f"{summary.flop} FLOP in the transcript",
        )

    # Step 5.
    facts = {
        **account.facts,
        "run.flop_total": account.flop_used,
        "workload.evals_passed": summary.evaluations_passed,
        "device.id": state.device_id,
    }
    checked = evaluate_predicates(predicates, facts)

    # Step 6.
    mode = mode_at(state, now)
    installed = state.installed
    active = installed is not None and mode is Mode.ACTIVE
    record = TrainingRecord(
        device_id=state.device_id,
        agreement=state.agreement_digest,
        time=now,
        mode=mode.value,
        ruleset_version=installed.update.version if installed is not None and active else 0,
        ruleset_digest=installed.digest if installed is not None and active else None,
        run_id=summary.run_id,
        kind=str(account.facts.get("workload.kind", "training")),
        cluster_size=int(account.facts.get("workload.cluster_size", 1)),
        flop_total=account.flop_used,
        transcript_head=summary.head,
        transcript_length=summary.length,
        steps=summary.steps,
        weights=summary.weights,
        parameters=summary.parameters,
        datasets=summary.datasets,
        phases=summary.phases,
        evaluations=summary.evaluations,
        predicates=checked,
        holder=holder,
    )
    envelope = Envelope.sign(record, identity_key)
    credential = (
        None
        if holder is None
        else issue_sd_jwt(record, sha256_digest(envelope.payload), state.certificate, identity_key)
    )
    new_state = dataclasses.replace(state, clock_high_water=max(state.clock_high_water, now))
    logger.debug(
        "issued the record of run %s: %d FLOP, %d steps", summary.run_id, account.flop_used, summary.steps
    )
    return new_state, IssuedRecord(RecordBundle(envelope, state.certificate), record, credential)


def request_record(
    device: Device,
    transcript: Transcript,
    *,
    holder: PublicKey | None = None,
    predicates: Sequence[str] = (),
) -> IssuedRecord:
    """Ask ``device`` for the signed record of the run that ``transcript`` describes."""

    def run(state: DeviceState | None, now: int) -> tuple[DeviceState, IssuedRecord]:
        enabled = _check_enabled(state)
        return issue_record(
            enabled, device._identity_key(), transcript, now, holder=holder, predicates=predicates
        )

    return device._operate(run)


def verify_certificate(certificate: Envelope, agreement_payload: bytes) -> DeviceCertificate:
    """Check that a manufacturer of the agreement certified the device for this agreement."""
    try:
        agreement = parse_statement(agreement_payload, Agreement, what="agreement")
        statement = certificate.statement(DeviceCertificate, what="certificate")
    except InputError as exc:
        raise Rejected(Reason.MALFORMED, str(exc)) from None
    manufacturers = {k.keyid: k for k in agreement.manufacturers}
    if not certificate.verified_by(manufacturers):
        raise Rejected(
            Reason.UNKNOWN_SIGNER,
            "the device certificate carries no valid signature by a manufacturer key of the agreement",
            expected=", ".join(sorted(manufacturers)),
            actual=", ".join(s.keyid for s in certificate.signatures) or "no signatures",
        )
    agreement_digest = sha256_digest(agreement_payload)
    if statement.agreement != agreement_digest:
        raise Rejected(
            Reason.WRONG_AGREEMENT,
            "the device was certified under another agreement",
            expected=agreement_digest,
            actual=statement.agreement,
        )
    return statement


def verify_record(bundle: RecordBundle, *, agreement_payload: bytes) -> TrainingRecord:
    """Verify a record bundle with public data only.

    Steps:
      1. a manufacturer key of the agreement certified the device for this agreement
         (``malformed``, ``unknown-signer``, ``wrong-agreement``);
      2. the certified identity key signed the record (``bad-signature``);
      3. the record names the certified device and this agreement (``bad-signature``,
         ``wrong-agreement``).
    """
    # Step 1.
    certificate = verify_certificate(bundle.certificate, agreement_payload)

    # Step 2.
    identity = certificate.identity_key
    if not bundle.record.verified_by({identity.keyid: identity}):
        raise Rejected(
            Reason.BAD_SIGNATURE,
            f"the record is not signed by the identity key certified for {certificate.device_id}",
            expected=identity.keyid,
            actual=", ".join(s.keyid for s in bundle.record.signatures) or "no signatures",
        )
    try:
        record = bundle.record.statement(TrainingRecord, what="record")
    except InputError as exc:
        raise Rejected(Reason.MALFORMED, str(exc)) from None

    # Step 3.
    if record.device_id != certificate.device_id:
        raise Rejected(
            Reason.BAD_SIGNATURE,
            "the record names another device than its certificate",
            expected=certificate.device_id,
            actual=record.device_id,
        )
    agreement_digest = sha256_digest(agreement_payload)
    if record.agreement != agreement_digest:
        raise Rejected(
            Reason.WRONG_AGREEMENT,
            "the record reports another agreement",
            expected=agreement_digest,
            actual=record.agreement,
        )
    return record
