"""Transcript chains, training records and their issuance by the device, without torch."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexheg.device.records import (
    TRANSCRIPT_GENESIS,
    RecordBundle,
    TrainingRecord,
    Transcript,
    b64url_decode,
    b64url_encode,
    parse_entry,
    request_record,
    summarize,
    verify_record,
    verify_transcript,
)
from flexheg.errors import InputError, Reason, Rejected
from flexheg.rules import parse_workload
from flexheg.wire import Envelope, SigningKey, parse_statement
from integrations.helpers import Setup, provision

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32

names = st.text("abcxyz0123-_.", min_size=1, max_size=10).filter(lambda s: s[0].isalnum())
flops = st.integers(0, 10**30).map(str)
entries = st.one_of(
    st.builds(
        lambda r, p: {"kind": "start", "run_id": r, "parameters": p, "admitted_flop": "0"},
        names,
        st.integers(0, 2**40),
    ),
    st.builds(
        lambda n, s: {"kind": "dataset", "name": n, "digest": DIGEST, "samples": s},
        names,
        st.integers(0, 10**9),
    ),
    st.builds(
        lambda s, p, f: {"kind": "step", "step": s, "phase": p, "batch": DIGEST, "samples": 64, "flop": f},
        st.integers(1, 10**6),
        names,
        flops,
    ),
    st.builds(lambda s: {"kind": "weights", "step": s, "digest": OTHER}, st.integers(0, 10**6)),
    st.builds(
        lambda s, n, g: {
            "kind": "evaluation",
            "step": s,
            "name": n,
            "score": "0.5",
            "threshold": "0.25",
            "goal": g,
            "weights": DIGEST,
            "flop": "10",
        },
        st.integers(0, 10**6),
        names,
        st.sampled_from(["max", "min"]),
    ),
    st.builds(lambda f: {"kind": "unspent", "flop": f}, flops),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(entries, max_size=12))
def test_transcript_jsonl_round_trip(items: list[dict[str, Any]]) -> None:
    transcript = Transcript.from_entries(items)
    again = Transcript.from_jsonl(transcript.to_jsonl())
    assert again.entries == transcript.entries
    assert again.head == transcript.head
    assert verify_transcript(again.entries, transcript.head, length=len(items)).head == transcript.head


@settings(max_examples=100, deadline=None)
@given(st.lists(entries, min_size=1, max_size=8), st.data())
def test_transcript_change_moves_head(items: list[dict[str, Any]], data: st.DataObject) -> None:
    transcript = Transcript.from_entries(items)
    index = data.draw(st.integers(0, len(items) - 1))
    changed = list(transcript.entries)
    changed[index] = (
        {"kind": "unspent", "flop": "7"}
        if changed[index] != {"kind": "unspent", "flop": "7"}
        else {"kind": "unspent", "flop": "8"}
    )
    with pytest.raises(Rejected) as rejected:
        verify_transcript(changed, transcript.head)
    assert rejected.value.reason is Reason.RECORD_MISMATCH


def test_empty_transcript_head_is_genesis() -> None:
    assert Transcript().head == TRANSCRIPT_GENESIS


@pytest.mark.parametrize(
    "entry",
    [
        {"kind": "step", "step": 0, "phase": "p", "batch": DIGEST, "samples": 1, "flop": "1"},
        {"kind": "step", "step": 1, "phase": "p", "batch": DIGEST, "samples": 1, "flop": "01"},
        {"kind": "step", "step": 1, "phase": "p", "batch": DIGEST, "samples": 1, "flop": "1", "extra": 1},
        {
            "kind": "evaluation",
            "step": 1,
            "name": "e",
            "score": "nan",
            "threshold": "1",
            "goal": "max",
            "weights": DIGEST,
            "flop": "1",
        },
        {
            "kind": "evaluation",
            "step": 1,
            "name": "e",
            "score": "1",
            "threshold": "1",
            "goal": "up",
            "weights": DIGEST,
            "flop": "1",
        },
        {"kind": "unspent", "flop": str(10**33)},
        {"kind": "reboot"},
    ],
)
def test_malformed_entries_rejected(entry: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        parse_entry(entry, where="entry")


def _transcript(step_flops: list[int], *, run_id: str = "run-1", final: bool = True) -> Transcript:
    transcript = Transcript()
    transcript.append({"kind": "start", "run_id": run_id, "parameters": 1000, "admitted_flop": "0"})
    transcript.append({"kind": "weights", "step": 0, "digest": DIGEST})
    for index, flop in enumerate(step_flops, start=1):
        transcript.append(
            {
                "kind": "step",
                "step": index,
                "phase": "pre-training",
                "batch": DIGEST,
                "samples": 8,
                "flop": str(flop),
            }
        )
    transcript.append(
        {
            "kind": "evaluation",
            "step": len(step_flops),
            "name": "evals.bio",
            "score": "0.1",
            "threshold": "0.2",
            "goal": "min",
            "weights": OTHER,
            "flop": "0",
        }
    )
    if final:
        transcript.append({"kind": "weights", "step": len(step_flops), "digest": OTHER})
    return transcript


def test_summary_counts_phases_and_evaluations() -> None:
    summary = summarize(_transcript([10, 20, 30]))
    assert summary.flop == 60
    assert summary.steps == 3
    assert summary.phases["pre-training"].samples == 24
    assert summary.weights == OTHER
    assert summary.evaluations_passed == ("evals.bio",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.entries.pop(), "last entry"),
        (lambda t: t.entries.insert(3, dict(t.entries[2])), "follows step"),
        (lambda t: t.entries.pop(0), "first entry"),
        (lambda t: t.entries.insert(1, dict(t.entries[0])), "second 'start'"),
    ],
)
def test_summary_rejects_bad_structure(change: Any, message: str) -> None:
    transcript = _transcript([1, 2])
    change(transcript)
    with pytest.raises(InputError, match=message):
        summarize(Transcript.from_entries(transcript.entries))


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_b64url_round_trip(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data), what="x") == data


@pytest.mark.parametrize("text", ["a", "ab==", "ab+/", "a b", "AB"])
def test_b64url_rejects_non_canonical(text: str) -> None:
    with pytest.raises(InputError):
        b64url_decode(text, what="x")


@pytest.fixture
def metered(tmp_path: Path) -> Setup:
    setup = provision(tmp_path, cap=1000)
    facts = parse_workload({"kind": "training", "run_id": "run-1", "flop": 0, "cluster_size": 8}, what="w")
    assert setup.device.admit(facts).decision.allowed
    for flop in (100, 200, 300):
        assert setup.device.meter("run-1", flop).decision.allowed
    return setup


def test_record_issued_and_verified(metered: Setup) -> None:
    issued = request_record(
        metered.device,
        _transcript([100, 200, 300]),
        holder=metered.holder.public,
        predicates=[
            "run.flop_total <= 600",
            '"evals.bio" in workload.evals_passed',
            "workload.cluster_size > 8",
        ],
    )
    record = verify_record(issued.bundle, agreement_payload=metered.agreement_payload)
    assert record.flop_total == 600
    assert record.cluster_size == 8
    assert record.ruleset_version == 1
    assert [p.holds for p in record.predicates] == [True, True, False]
    again = parse_statement(record.encode(), TrainingRecord, what="record")
    assert again == record
    assert RecordBundle.from_json(issued.bundle.to_json(), what="bundle") == issued.bundle


def test_record_rejects_transcript_with_other_flop(metered: Setup) -> None:
    with pytest.raises(Rejected) as rejected:
        request_record(metered.device, _transcript([100, 200, 299]))
    assert rejected.value.reason is Reason.RECORD_MISMATCH


def test_record_rejects_unadmitted_run(metered: Setup) -> None:
    with pytest.raises(Rejected) as rejected:
        request_record(metered.device, _transcript([600], run_id="run-2"))
    assert rejected.value.reason is Reason.WORKLOAD_DENIED


def test_record_rejects_undecidable_predicate(metered: Setup) -> None:
    with pytest.raises(InputError, match="needs a fact"):
        request_record(metered.device, _transcript([100, 200, 300]), predicates=["location.verified"])


def test_record_rejects_forged_signature(metered: Setup) -> None:
    issued = request_record(metered.device, _transcript([100, 200, 300]))
    forged = Envelope.sign(dataclasses.replace(issued.record, flop_total=1), SigningKey.generate())
    with pytest.raises(Rejected) as rejected:
        verify_record(
            RecordBundle(forged, issued.bundle.certificate), agreement_payload=metered.agreement_payload
        )
    assert rejected.value.reason is Reason.BAD_SIGNATURE


def test_record_rejects_other_agreement(metered: Setup, tmp_path: Path) -> None:
    issued = request_record(metered.device, _transcript([100, 200, 300]))
    other = provision(tmp_path / "other", cap=1)
    with pytest.raises(Rejected) as rejected:
        verify_record(issued.bundle, agreement_payload=other.agreement_payload)
    assert rejected.value.reason is Reason.UNKNOWN_SIGNER
