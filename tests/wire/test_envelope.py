"""DSSE envelopes: signing, verification, the JSON codec and strict parsing."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexheg.errors import InputError
from flexheg.policy import Action, Approval
from flexheg.wire import PAYLOAD_TYPE, Envelope, EnvelopeSignature, SigningKey, pae, sha256_digest

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY_A = SigningKey.generate()
KEY_B = SigningKey.generate()
DIGEST = sha256_digest(b"subject")


def approval(serial: int = 1, approver: str = "bloc-a") -> Approval:
    return Approval(DIGEST, Action.INSTALL, DIGEST, approver, serial, 1_800_000_000)


envelopes = st.builds(
    Envelope,
    payload=st.binary(min_size=1, max_size=64),
    payload_type=st.text(min_size=1, max_size=20),
    signatures=st.lists(
        st.builds(
            EnvelopeSignature, keyid=st.text(min_size=1, max_size=16), sig=st.binary(min_size=1, max_size=64)
        ),
        max_size=3,
    ).map(tuple),
)


@SETTINGS
@given(envelopes)
def test_json_round_trip(envelope: Envelope) -> None:
    assert Envelope.from_json(envelope.to_json(), what="envelope") == envelope


@SETTINGS
@given(
    envelopes,
    st.text(min_size=1, max_size=10).filter(lambda k: k not in ("payload", "payloadType", "signatures")),
)
def test_unknown_top_field_rejected(envelope: Envelope, extra: str) -> None:
    document = {**envelope.to_dict(), extra: 1}
    with pytest.raises(InputError, match="unknown field"):
        Envelope.from_dict(document, what="envelope")


def test_unknown_signature_field_rejected() -> None:
    document = Envelope.sign(approval(), KEY_A).to_dict()
    document["signatures"][0]["cert"] = "x"
    with pytest.raises(InputError, match=r"signatures\[0\]: unknown field"):
        Envelope.from_dict(document, what="envelope")


@SETTINGS
@given(st.binary(max_size=80))
def test_random_bytes_raise_only_input_error(data: bytes) -> None:
    with contextlib.suppress(InputError):
        Envelope.from_json(data, what="envelope")


@SETTINGS
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_random_json_raises_only_input_error(value: Any) -> None:
    with contextlib.suppress(InputError):
        Envelope.from_dict(value, what="envelope")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("payload", None, "expected a string"),
        ("payload", "", "must not be empty"),
        ("payload", "@@", "not valid base64"),
        ("payloadType", 1, "expected a string"),
        ("signatures", {}, "expected a list"),
        ("signatures", [1], r"signatures\[0\]: expected a JSON object"),
        ("signatures", [{"keyid": "k"}], "missing required field 'sig'"),
    ],
)
def test_field_of_wrong_type_rejected(name: str, value: Any, message: str) -> None:
    document = Envelope.sign(approval(), KEY_A).to_dict()
    document[name] = value
    with pytest.raises(InputError, match=message) as exc:
        Envelope.from_dict(document, what="envelope")
    assert str(exc.value).startswith("envelope")


def test_empty_signature_list_parses_but_verifies_nothing() -> None:
    document = Envelope.sign(approval(), KEY_A).to_dict()
    document["signatures"] = []
    envelope = Envelope.from_dict(document, what="envelope")
    assert envelope.verified_by({KEY_A.keyid: KEY_A.public}) == []


def test_invalid_base64_rejected() -> None:
    document = Envelope.sign(approval(), KEY_A).to_dict()
    document["signatures"][0]["sig"] = "not base64!"
    with pytest.raises(InputError, match=r"signatures\[0\].sig: not valid base64"):
        Envelope.from_dict(document, what="envelope")


def test_duplicate_key_in_json_rejected() -> None:
    text = Envelope.sign(approval(), KEY_A).to_json().decode()
    doubled = text.replace('"payloadType":', '"payloadType": "x", "payloadType":', 1)
    with pytest.raises(InputError, match="duplicate JSON key 'payloadType'"):
        Envelope.from_json(doubled.encode(), what="approval.json")


@SETTINGS
@given(st.integers(min_value=0, max_value=2**53 - 1), st.sampled_from(["bloc-a", "bloc-b", "é-bloc"]))
def test_sign_verify_round_trip(serial: int, approver: str) -> None:
    statement = approval(serial, approver)
    envelope = Envelope.sign(statement, KEY_A)
    parsed = Envelope.from_json(envelope.to_json(), what="envelope")
    assert parsed.verified_by({KEY_A.keyid: KEY_A.public}) == [KEY_A.public]
    assert parsed.statement(Approval, what="envelope") == statement


def test_verified_by_other_key_is_empty() -> None:
    envelope = Envelope.sign(approval(), KEY_A)
    assert envelope.verified_by({KEY_B.keyid: KEY_B.public}) == []
    assert envelope.verified_by({KEY_A.keyid: KEY_B.public}) == []
    assert envelope.verified_by({}) == []


def test_verified_by_counts_each_key_once() -> None:
    envelope = Envelope.sign(approval(), KEY_A, KEY_B, KEY_A)
    keys = {KEY_A.keyid: KEY_A.public, KEY_B.keyid: KEY_B.public}
    assert envelope.verified_by(keys) == [KEY_A.public, KEY_B.public]


def test_signature_bound_to_payload_type() -> None:
    """A signature over one payload type does not verify under another."""
    envelope = Envelope.sign(approval(), KEY_A)
    moved = Envelope(envelope.payload, "application/vnd.other+json", envelope.signatures)
    assert moved.verified_by({KEY_A.keyid: KEY_A.public}) == []
    with pytest.raises(InputError, match="payload type"):
        moved.statement(Approval, what="envelope")


def test_signature_bound_to_payload() -> None:
    envelope = Envelope.sign(approval(1), KEY_A)
    swapped = Envelope(approval(2).encode(), PAYLOAD_TYPE, envelope.signatures)
    assert swapped.verified_by({KEY_A.keyid: KEY_A.public}) == []


def test_pae_layout() -> None:
    assert pae("a/b", b"xyz") == b"DSSEv1 3 a/b 3 xyz"
    assert pae("é", b"") == "DSSEv1 2 é 0 ".encode()


@SETTINGS
@given(st.text(max_size=10), st.binary(max_size=10), st.text(max_size=10), st.binary(max_size=10))
def test_pae_is_injective(type_a: str, payload_a: bytes, type_b: str, payload_b: bytes) -> None:
    if (type_a, payload_a) != (type_b, payload_b):
        assert pae(type_a, payload_a) != pae(type_b, payload_b)


def test_json_is_standard_base64() -> None:
    envelope = Envelope.sign(approval(), KEY_A)
    document = json.loads(envelope.to_json())
    assert base64.b64decode(document["payload"]) == approval().encode()
    assert document["payloadType"] == PAYLOAD_TYPE
    assert len(base64.b64decode(document["signatures"][0]["sig"])) == 64
