"""Signed notes, checkpoints, cosignatures, witness policies and the device's bundle check."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import struct
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire.checkpoint import (
    COSIGNATURE_V1_TYPE,
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    LogBundle,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    WitnessPolicy,
    cosignature_time,
    sign_checkpoint,
    verify_log_bundle,
    verify_note,
)
from flexheg.wire.merkle import (
    CompactRange,
    NodeId,
    consistency_ranges,
    hash_ranges,
    inclusion_ranges,
    leaf_hash,
)

LOG = NoteSigner.generate("log.example/a")
WITNESSES = [NoteSigner.generate(f"w{i}.example") for i in range(3)]
WITNESS_KEYS = [w.cosignature_verifier() for w in WITNESSES]


class Log:
    """A minimal in-memory log to build bundles for the checks below."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = entries
        self.nodes: dict[NodeId, bytes] = {}
        self.compact = CompactRange()
        for entry in entries:
            self.nodes.update(self.compact.append(leaf_hash(entry)))

    def read(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return {node: self.nodes[node] for node in ids}

    def checkpoint(self, size: int, *, cosigners: list[NoteSigner], at: int = 1000) -> Checkpoint:
        root = hash_ranges([(0, size)], self.read)[0] if size else CompactRange().root()
        signed = sign_checkpoint(LOG, size=size, root_hash=root)
        return signed.with_signatures(w.cosign(signed.text(), at) for w in cosigners)

    def bundle(self, indices: list[int], checkpoint: Checkpoint, seen: int | None) -> LogBundle:
        inclusion = tuple(
            InclusionProof(i, tuple(hash_ranges(inclusion_ranges(i, checkpoint.size), self.read)))
            for i in indices
        )
        consistency = None
        if seen is not None and seen != checkpoint.size:
            old, new = sorted((seen, checkpoint.size))
            consistency = ConsistencyProof(
                old, new, tuple(hash_ranges(consistency_ranges(old, new), self.read))
            )
        return LogBundle(checkpoint, inclusion, consistency)


ENTRIES = [f"approval {i}".encode() for i in range(13)]


def check(bundle: LogBundle | bytes, entries: list[bytes], *, quorum: int = 2,
          newest: Checkpoint | None = None) -> Checkpoint:
    return verify_log_bundle(bundle, entries=entries, log_key=LOG.verifier(),
                             witnesses=WITNESS_KEYS, quorum=quorum, newest_seen=newest)


def reason_of(bundle: LogBundle | bytes, entries: list[bytes], **kwargs: object) -> Reason:
    with pytest.raises(Rejected) as caught:
        check(bundle, entries, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


# Notes and keys.


def test_vkey_round_trip() -> None:
    vkey = LOG.verifier().to_vkey()
    assert NoteVerifier.from_vkey(vkey) == LOG.verifier()


def test_vkey_wrong_key_id_rejected() -> None:
    name, _key_id, material = LOG.verifier().to_vkey().split("+", 2)
    with pytest.raises(InputError, match="does not match"):
        NoteVerifier.from_vkey(f"{name}+00000000+{material}")


def test_key_id_follows_c2sp() -> None:
    verifier = LOG.verifier()
    expected = hashlib.sha256(b"log.example/a\n\x01" + verifier.public).digest()[:4]
    assert verifier.key_id == expected
    cosigner = WITNESSES[0].cosignature_verifier()
    expected = hashlib.sha256(b"w0.example\n\x04" + cosigner.public).digest()[:4]
    assert cosigner.key_id == expected


def test_note_signature_verifies() -> None:
    checkpoint = sign_checkpoint(LOG, size=3, root_hash=b"\x01" * 32)
    note = SignedNote.parse(checkpoint.to_bytes())
    assert verify_note(note, LOG.verifier())
    assert not verify_note(note, NoteSigner.generate("log.example/a").verifier())


def test_note_text_change_breaks_signature() -> None:
    checkpoint = sign_checkpoint(LOG, size=3, root_hash=b"\x01" * 32)
    tampered = checkpoint.to_bytes().replace(b"\n3\n", b"\n4\n", 1)
    assert not verify_note(SignedNote.parse(tampered), LOG.verifier())


@given(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                   exclude_characters="+"), min_size=1, max_size=20),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(st.text(alphabet="abc xyz=", min_size=1, max_size=10), max_size=3),
)
def test_checkpoint_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    signer = NoteSigner.generate(origin)
    signed = sign_checkpoint(signer, size=size, root_hash=root, extensions=extensions)
    parsed = Checkpoint.parse(signed.to_bytes())
    assert parsed == signed
    assert parsed.to_bytes() == signed.to_bytes()
    assert verify_note(parsed.signed_note(), signer.verifier())


@given(st.binary(max_size=300))
def test_note_parser_never_crashes(data: bytes) -> None:
    with contextlib.suppress(InputError):
        Checkpoint.parse(data)


@pytest.mark.parametrize(
    "text",
    [
        "log\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— log AAAA\n",
        "log\n1\nAAAA\n\n— log AAAAAAAA\n",
        "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— log AAAAAAAA\n",
        "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n- log AAAAAAAA\n",
        "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— log AAAAAAAA",
        "log\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— log AAAAAAAA\n",
    ],
    ids=["leading-zero", "short-root", "empty-origin", "no-signatures", "ascii-dash",
         "no-final-newline", "negative-size"],
)
def test_malformed_checkpoint_rejected(text: str) -> None:
    with pytest.raises(InputError):
        Checkpoint.parse(text.encode())


# Cosignatures and the witness policy.


def test_cosignature_message_format() -> None:
    signed = sign_checkpoint(LOG, size=5, root_hash=b"\x02" * 32)
    line = WITNESSES[0].cosign(signed.text(), 1679315147)
    assert line.signature[:8] == struct.pack(">Q", 1679315147)
    message = b"cosignature/v1\ntime 1679315147\n" + signed.text().encode()
    WITNESSES[0].private.public_key().verify(line.signature[8:], message)


def test_cosignature_time_returned() -> None:
    log = Log(ENTRIES)
    checkpoint = log.checkpoint(13, cosigners=WITNESSES[:1], at=4242)
    assert cosignature_time(checkpoint.signed_note(), WITNESS_KEYS[0]) == 4242
    assert cosignature_time(checkpoint.signed_note(), WITNESS_KEYS[1]) is None


def test_cosignature_over_other_checkpoint_ignored() -> None:
    log = Log(ENTRIES)
    other = log.checkpoint(12, cosigners=WITNESSES)
    checkpoint = log.checkpoint(13, cosigners=[])
    moved = checkpoint.with_signatures(other.signed_note().signatures[1:])
    assert WitnessPolicy(tuple(WITNESS_KEYS), 1).evaluate(moved).cosigned == ()


def test_quorum_counts_distinct_witnesses() -> None:
    """Two valid cosignature lines by one witness key, different timestamps, count once."""
    log = Log(ENTRIES)
    checkpoint = log.checkpoint(13, cosigners=[])
    text = checkpoint.text()
    doubled = checkpoint.with_signatures(
        [WITNESSES[0].cosign(text, 1000), WITNESSES[0].cosign(text, 2000)]
    )
    bundle = log.bundle([3], doubled, None)
    assert reason_of(bundle, [ENTRIES[3]], quorum=2) is Reason.WITNESS_QUORUM_NOT_MET
    assert cosignature_time(doubled.signed_note(), WITNESS_KEYS[0]) == 2000


def test_quorum_met_by_two_witnesses() -> None:
    log = Log(ENTRIES)
    checkpoint = log.checkpoint(13, cosigners=WITNESSES[:2])
    assert check(log.bundle([3], checkpoint, None), [ENTRIES[3]]) == checkpoint


def test_policy_rejects_one_key_under_two_names() -> None:
    same = WITNESSES[0].public
    with pytest.raises(InputError, match="another witness"):
        WitnessPolicy((NoteVerifier("a", COSIGNATURE_V1_TYPE, same),
                       NoteVerifier("b", COSIGNATURE_V1_TYPE, same)), 2)


@pytest.mark.parametrize("quorum", [0, 4, -1])
def test_policy_rejects_bad_quorum(quorum: int) -> None:
    with pytest.raises(InputError, match="quorum"):
        WitnessPolicy(tuple(WITNESS_KEYS), quorum)


def test_policy_rejects_note_key_as_witness() -> None:
    with pytest.raises(InputError, match="cosignature"):
        WitnessPolicy((WITNESSES[0].verifier(),), 1)


def test_policy_text_round_trip() -> None:
    policy = WitnessPolicy(tuple(WITNESS_KEYS), 2)
    parsed, log_key = WitnessPolicy.parse(policy.to_text(LOG.verifier()))
    assert parsed == policy
    assert log_key == LOG.verifier()


def test_policy_text_any_and_unknown_member() -> None:
    lines = [f"witness {w.name} {w.to_vkey()}" for w in WITNESS_KEYS]
    parsed, _ = WitnessPolicy.parse("\n".join([*lines, "group g any w0.example w1.example",
                                               "quorum g"]))
    assert parsed.quorum == 1
    with pytest.raises(InputError, match="unknown witnesses"):
        WitnessPolicy.parse("\n".join([*lines, "group g 1 nobody", "quorum g"]))


# The bundle check.


def test_bundle_accepts_and_returns_checkpoint() -> None:
    log = Log(ENTRIES)
    checkpoint = log.checkpoint(13, cosigners=WITNESSES)
    bundle = log.bundle([0, 5, 12], checkpoint, None)
    assert check(bundle.to_json(), [ENTRIES[0], ENTRIES[5], ENTRIES[12]]) == checkpoint


def test_bundle_json_round_trip() -> None:
    log = Log(ENTRIES)
    checkpoint = log.checkpoint(13, cosigners=WITNESSES)
    bundle = log.bundle([1], checkpoint, 7)
    assert LogBundle.from_json(bundle.to_json()) == bundle


def test_bundle_unknown_field_rejected() -> None:
    log = Log(ENTRIES)
    document = log.bundle([1], log.checkpoint(13, cosigners=WITNESSES), None).to_dict()
    document["extra"] = 1
    with pytest.raises(InputError, match="unknown field"):
        LogBundle.from_dict(document)


def test_bundle_wrong_entry_rejected() -> None:
    log = Log(ENTRIES)
    bundle = log.bundle([4], log.checkpoint(13, cosigners=WITNESSES), None)
    assert reason_of(bundle, [b"secret approval"]) is Reason.BAD_PROOF


def test_bundle_missing_proof_rejected() -> None:
    log = Log(ENTRIES)
    bundle = log.bundle([4], log.checkpoint(13, cosigners=WITNESSES), None)
    assert reason_of(bundle, [ENTRIES[4], ENTRIES[5]]) is Reason.NOT_LOGGED


def test_bundle_entry_beyond_checkpoint_rejected() -> None:
    log = Log(ENTRIES)
    checkpoint = log.checkpoint(10, cosigners=WITNESSES)
    bundle = LogBundle(checkpoint, (InclusionProof(11, ()),), None)
    assert reason_of(bundle, [ENTRIES[11]]) is Reason.NOT_LOGGED


def test_bundle_from_other_log_rejected() -> None:
    other = NoteSigner.generate("log.example/a")
    log = Log(ENTRIES)
    root = hash_ranges([(0, 13)], log.read)[0]
    forged = sign_checkpoint(other, size=13, root_hash=root)
    forged = forged.with_signatures(w.cosign(forged.text(), 5) for w in WITNESSES)
    assert reason_of(log.bundle([2], forged, None), [ENTRIES[2]]) is Reason.NOT_LOGGED


def test_bundle_malformed_bytes_rejected() -> None:
    assert reason_of(b"{", [ENTRIES[0]]) is Reason.MALFORMED


def test_bundle_size_bit_flip_rejected() -> None:
    log = Log(ENTRIES)
    checkpoint = log.checkpoint(13, cosigners=WITNESSES)
    for bit in range(5):
        size = 13 ^ (1 << bit)
        text = checkpoint.to_bytes().decode().replace("\n13\n", f"\n{size}\n", 1)
        bundle = LogBundle(Checkpoint.parse(text), log.bundle([0], checkpoint, None).inclusion)
        assert reason_of(bundle, [ENTRIES[0]]) is Reason.NOT_LOGGED


def test_bundle_newer_consistent_checkpoint_accepted() -> None:
    log = Log(ENTRIES)
    old = log.checkpoint(6, cosigners=WITNESSES)
    new = log.checkpoint(13, cosigners=WITNESSES)
    assert check(log.bundle([9], new, 6), [ENTRIES[9]], newest=old) == new


def test_bundle_older_consistent_checkpoint_keeps_newest() -> None:
    log = Log(ENTRIES)
    old = log.checkpoint(6, cosigners=WITNESSES)
    new = log.checkpoint(13, cosigners=WITNESSES)
    assert check(log.bundle([2], old, 13), [ENTRIES[2]], newest=new) == new


def test_bundle_equal_checkpoint_accepted() -> None:
    log = Log(ENTRIES)
    checkpoint = log.checkpoint(13, cosigners=WITNESSES)
    assert check(log.bundle([2], checkpoint, 13), [ENTRIES[2]], newest=checkpoint) == checkpoint


def test_bundle_split_view_rejected() -> None:
    log = Log(ENTRIES)
    fork = Log([*ENTRIES[:6], b"hidden", *ENTRIES[7:]])
    seen = log.checkpoint(13, cosigners=WITNESSES)
    forked = fork.checkpoint(13, cosigners=WITNESSES)
    bundle = fork.bundle([0], forked, 13)
    assert reason_of(bundle, [ENTRIES[0]], newest=seen) is Reason.INCONSISTENT_LOG


def test_bundle_fork_at_other_size_rejected() -> None:
    log = Log(ENTRIES)
    fork = Log([*ENTRIES[:3], b"hidden", *ENTRIES[4:]])
    seen = log.checkpoint(8, cosigners=WITNESSES)
    forked = fork.checkpoint(13, cosigners=WITNESSES)
    bundle = fork.bundle([0], forked, 8)
    assert reason_of(bundle, [ENTRIES[0]], newest=seen) is Reason.INCONSISTENT_LOG


def test_bundle_missing_consistency_rejected() -> None:
    log = Log(ENTRIES)
    old = log.checkpoint(6, cosigners=WITNESSES)
    new = log.checkpoint(13, cosigners=WITNESSES)
    bundle = log.bundle([9], new, None)
    assert reason_of(bundle, [ENTRIES[9]], newest=old) is Reason.INCONSISTENT_LOG


def test_bundle_consistency_for_other_size_rejected() -> None:
    log = Log(ENTRIES)
    old = log.checkpoint(6, cosigners=WITNESSES)
    new = log.checkpoint(13, cosigners=WITNESSES)
    bundle = log.bundle([9], new, 7)
    assert reason_of(bundle, [ENTRIES[9]], newest=old) is Reason.INCONSISTENT_LOG


def test_bundle_without_witnesses_fails_closed() -> None:
    log = Log(ENTRIES)
    bundle = log.bundle([0], log.checkpoint(13, cosigners=WITNESSES), None)
    with pytest.raises(InputError):
        verify_log_bundle(bundle, entries=[ENTRIES[0]], log_key=LOG.verifier(), witnesses=[],
                          quorum=0, newest_seen=None)


def test_signature_line_format() -> None:
    line = NoteSignature("w", b"\x00\x01\x02\x03", b"sig").line()
    assert line == "— w " + base64.b64encode(b"\x00\x01\x02\x03sig").decode() + "\n"
