"""The verifier: appraisal of device evidence, and one attack per rejection it can make."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _parties import START, Parties
from flexheg.attest import EvidenceBundle, appraise
from flexheg.device import DeviceCertificate, Evidence, attest, install
from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import Envelope, EnvelopeSignature, SigningKey

PARTIES = Parties()
IDENTITY = SigningKey.generate()
NONCE = "6e6f6e6365"


def bundle(
    nonce: str = NONCE,
    now: int = START,
    *,
    identity: SigningKey = IDENTITY,
    certificate: Envelope | None = None,
    device_id: str = "dev-1",
) -> EvidenceBundle:
    state = PARTIES.state(device_id=device_id)
    payload = PARTIES.update(3)
    state, _ = install(state, payload, PARTIES.approve(payload), now)
    _, evidence = attest(state, identity, nonce, now)
    return EvidenceBundle(evidence, certificate or PARTIES.certificate(device_id, IDENTITY))


def appraise_at(evidence: EvidenceBundle, *, nonce: str = NONCE, now: int = START) -> Evidence:
    return appraise(evidence, agreement_payload=PARTIES.agreement_payload, nonce=nonce, now=now).evidence


def test_evidence_verifies() -> None:
    result = appraise(bundle(), agreement_payload=PARTIES.agreement_payload, nonce=NONCE, now=START + 10)
    assert result.device_id == "dev-1"
    assert result.model == "test-model"
    assert result.evidence.mode == "active"
    assert result.evidence.ruleset_version == 3
    assert result.to_dict()["verified"] is True


def test_bundle_json_round_trip() -> None:
    original = bundle()
    parsed = EvidenceBundle.from_json(json.dumps(original.to_dict()).encode(), what="evidence.json")
    assert parsed == original
    assert appraise_at(parsed).nonce == NONCE


def test_stale_nonce_other_nonce() -> None:
    with pytest.raises(Rejected) as exc:
        appraise_at(bundle(nonce="old"), nonce=NONCE)
    assert exc.value.reason is Reason.STALE_NONCE
    assert exc.value.expected == NONCE
    assert exc.value.actual == "old"


def test_stale_nonce_too_old() -> None:
    with pytest.raises(Rejected) as exc:
        appraise_at(bundle(now=START), now=START + 301)
    assert exc.value.reason is Reason.STALE_NONCE
    assert exc.value.expected == f"within 300 s of {START + 301}"
    assert exc.value.actual == str(START)


def test_stale_nonce_from_future() -> None:
    with pytest.raises(Rejected) as exc:
        appraise_at(bundle(now=START + 301), now=START)
    assert exc.value.reason is Reason.STALE_NONCE


def test_stale_nonce_window_edges() -> None:
    assert appraise_at(bundle(now=START), now=START + 300).time == START
    assert appraise_at(bundle(now=START + 300), now=START).time == START + 300


def test_unknown_signer_forged_certificate() -> None:
    statement = DeviceCertificate("dev-1", IDENTITY.public, "test-model", PARTIES.agreement_digest, START)
    forged = Envelope.sign(statement, PARTIES.forger)
    with pytest.raises(Rejected) as exc:
        appraise_at(bundle(certificate=forged))
    assert exc.value.reason is Reason.UNKNOWN_SIGNER
    assert exc.value.expected == PARTIES.manufacturer.keyid
    assert exc.value.actual == PARTIES.forger.keyid


def test_bad_signature_certificate_altered() -> None:
    """A certificate re-pointed at the attacker's identity key no longer verifies."""
    attacker = SigningKey.generate()
    genuine = PARTIES.certificate("dev-1", IDENTITY)
    altered = DeviceCertificate("dev-1", attacker.public, "test-model", PARTIES.agreement_digest, START)
    swapped = dataclasses.replace(genuine, payload=altered.encode())
    with pytest.raises(Rejected) as exc:
        appraise_at(bundle(identity=attacker, certificate=swapped))
    assert exc.value.reason is Reason.BAD_SIGNATURE


def test_bad_signature_evidence_by_other_key() -> None:
    attacker = SigningKey.generate()
    with pytest.raises(Rejected) as exc:
        appraise_at(bundle(identity=attacker))
    assert exc.value.reason is Reason.BAD_SIGNATURE
    assert exc.value.expected == IDENTITY.keyid
    assert exc.value.actual == attacker.keyid


def test_bad_signature_evidence_bit_flip() -> None:
    original = bundle()
    signature = original.evidence.signatures[0]
    flipped = EnvelopeSignature(signature.keyid, bytes([signature.sig[0] ^ 1]) + signature.sig[1:])
    tampered = EvidenceBundle(
        dataclasses.replace(original.evidence, signatures=(flipped,)), original.certificate
    )
    with pytest.raises(Rejected) as exc:
        appraise_at(tampered)
    assert exc.value.reason is Reason.BAD_SIGNATURE


def test_wrong_device_evidence_names_other_device() -> None:
    """Evidence from dev-2, paired with dev-1's certificate and signed by dev-1's key."""
    with pytest.raises(Rejected) as exc:
        appraise_at(bundle(device_id="dev-2", certificate=PARTIES.certificate("dev-1", IDENTITY)))
    assert exc.value.reason is Reason.WRONG_DEVICE
    assert exc.value.expected == "dev-1"
    assert exc.value.actual == "dev-2"


def test_wrong_device_not_the_one_asked() -> None:
    """Valid evidence from dev-1 is rejected when the verifier asked another device."""
    with pytest.raises(Rejected) as exc:
        appraise(
            bundle(), agreement_payload=PARTIES.agreement_payload, nonce=NONCE, now=START, device_id="dev-9"
        )
    assert exc.value.reason is Reason.WRONG_DEVICE
    assert exc.value.expected == "dev-9"
    assert exc.value.actual == "dev-1"


def test_unknown_signer_other_agreement() -> None:
    """An agreement with other manufacturer keys does not vouch for this certificate."""
    other = Parties()
    with pytest.raises(Rejected) as exc:
        appraise(bundle(), agreement_payload=other.agreement_payload, nonce=NONCE, now=START)
    assert exc.value.reason is Reason.UNKNOWN_SIGNER


def test_wrong_agreement_same_manufacturer() -> None:
    """A device certified under another agreement by the same manufacturer is rejected."""
    statement = DeviceCertificate("dev-1", IDENTITY.public, "test-model", "sha256:" + "1" * 64, START)
    certificate = Envelope.sign(statement, PARTIES.manufacturer)
    with pytest.raises(Rejected) as exc:
        appraise_at(bundle(certificate=certificate))
    assert exc.value.reason is Reason.WRONG_AGREEMENT
    assert exc.value.expected == PARTIES.agreement_digest
    assert exc.value.actual == "sha256:" + "1" * 64


def test_malformed_agreement() -> None:
    with pytest.raises(Rejected) as exc:
        appraise(bundle(), agreement_payload=b"{}", nonce=NONCE, now=START)
    assert exc.value.reason is Reason.MALFORMED


def test_malformed_certificate_payload() -> None:
    original = bundle()
    with pytest.raises(Rejected) as exc:
        appraise_at(EvidenceBundle(original.evidence, original.evidence))
    assert exc.value.reason is Reason.MALFORMED
    assert "certificate" in exc.value.message


def test_unknown_bundle_field_rejected() -> None:
    document = {**bundle().to_dict(), "extra": 1}
    with pytest.raises(InputError, match="unknown field"):
        EvidenceBundle.from_json(json.dumps(document).encode(), what="evidence.json")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=80))
def test_random_bundle_bytes_raise_only_input_error(data: bytes) -> None:
    with contextlib.suppress(InputError):
        EvidenceBundle.from_json(data, what="evidence.json")
