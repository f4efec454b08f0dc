"""SD-JWT presentations of training records: selective disclosure, key binding and attacks."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexheg.attest.disclosure import Credential, present, verify_presentation
from flexheg.device.records import (
    Transcript,
    b64url_encode,
    disclosure_digest,
    make_disclosure,
    request_record,
    sign_jws,
    verify_certificate,
)
from flexheg.errors import InputError, Reason, Rejected
from flexheg.rules import parse_workload
from flexheg.wire import SigningKey
from integrations.helpers import Setup, provision

NOW = 1_900_000_000
DIGEST = "sha256:" + "ab" * 32
PREDICATES = ["run.flop_total < 1e25", "run.flop_total < 100", '"mmlu" in workload.evals_passed']


def _transcript() -> Transcript:
    transcript = Transcript()
    transcript.append({"kind": "start", "run_id": "run-1", "parameters": 10**9, "admitted_flop": "0"})
    transcript.append({"kind": "weights", "step": 0, "digest": DIGEST})
    transcript.append(
        {"kind": "step", "step": 1, "phase": "pre-training", "batch": DIGEST, "samples": 8, "flop": "700"}
    )
    transcript.append(
        {
            "kind": "evaluation",
            "step": 1,
            "name": "mmlu",
            "score": "0.7",
            "threshold": "0.6",
            "goal": "max",
            "weights": DIGEST,
            "flop": "0",
        }
    )
    transcript.append({"kind": "weights", "step": 1, "digest": DIGEST})
    return transcript


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> tuple[Setup, str]:
    setup = provision(tmp_path_factory.mktemp("device"), cap=10**6)
    facts = parse_workload({"kind": "training", "run_id": "run-1", "flop": 0, "cluster_size": 4}, what="w")
    assert setup.device.admit(facts).decision.allowed
    assert setup.device.meter("run-1", 700).decision.allowed
    record = request_record(setup.device, _transcript(), holder=setup.holder.public, predicates=PREDICATES)
    assert record.credential is not None
    return setup, record.credential


def _present(issued: tuple[Setup, str], disclose: list[str], **changes: object) -> str:
    setup, credential = issued
    options: dict[str, object] = {
        "holder_key": setup.holder,
        "audience": "state-b",
        "nonce": "n-1",
        "now": NOW,
    }
    options.update(changes)
    return present(credential, disclose=disclose, **options)  # type: ignore[arg-type]


def _verify(issued: tuple[Setup, str], presentation: str, **changes: object) -> object:
    options: dict[str, object] = {"audience": "state-b", "nonce": "n-1", "now": NOW}
    options.update(changes)
    return verify_presentation(presentation, agreement_payload=issued[0].agreement_payload, **options)  # type: ignore[arg-type]


def _reason(issued: tuple[Setup, str], presentation: str, **changes: object) -> Reason:
    with pytest.raises(Rejected) as rejected:
        _verify(issued, presentation, **changes)
    return rejected.value.reason


def test_credential_lists_every_claim(issued: tuple[Setup, str]) -> None:
    paths = Credential.parse(issued[1]).paths
    assert "flop_total" in paths
    assert "evaluations/mmlu@1" in paths
    assert {f"predicates/{p}" for p in PREDICATES} <= set(paths)


def test_subset_disclosed_and_rest_hidden(issued: tuple[Setup, str]) -> None:
    presentation = _present(issued, ["weights", "predicates/run.flop_total < 1e25", "evaluations/mmlu@1"])
    verified = verify_presentation(
        presentation, agreement_payload=issued[0].agreement_payload, audience="state-b", nonce="n-1", now=NOW
    )
    assert verified.claims == {"weights": DIGEST}
    assert verified.predicates == {"run.flop_total < 1e25": True}
    assert verified.evaluations["mmlu@1"]["passed"] is True
    assert verified.flop_total is None
    verified.require_predicate("run.flop_total < 1e25")
    assert "700" not in presentation.split("~", 1)[1]


def test_full_disclosure_reveals_flop(issued: tuple[Setup, str]) -> None:
    verified = verify_presentation(
        _present(issued, ["flop_total", "phases"]),
        agreement_payload=issued[0].agreement_payload,
        audience="state-b",
        nonce="n-1",
        now=NOW,
    )
    assert verified.flop_total == 700
    assert verified.claims["phases"]["pre-training"]["flop"] == "700"


def test_false_predicate_fails_requirement(issued: tuple[Setup, str]) -> None:
    verified = verify_presentation(
        _present(issued, ["predicates/run.flop_total < 100"]),
        agreement_payload=issued[0].agreement_payload,
        audience="state-b",
        nonce="n-1",
        now=NOW,
    )
    with pytest.raises(Rejected):
        verified.require_predicate("run.flop_total < 100")
    with pytest.raises(Rejected):
        verified.require_predicate("run.flop_total < 1e25")


def test_other_audience_rejected(issued: tuple[Setup, str]) -> None:
    assert _reason(issued, _present(issued, ["weights"]), audience="state-c") is Reason.WRONG_AUDIENCE


def test_other_nonce_rejected(issued: tuple[Setup, str]) -> None:
    assert _reason(issued, _present(issued, ["weights"]), nonce="n-2") is Reason.STALE_NONCE


def test_stale_key_binding_rejected(issued: tuple[Setup, str]) -> None:
    assert _reason(issued, _present(issued, ["weights"], now=NOW - 3600)) is Reason.STALE_NONCE


def test_missing_key_binding_rejected(issued: tuple[Setup, str]) -> None:
    presentation = _present(issued, ["weights"])
    assert _reason(issued, presentation[: presentation.rindex("~") + 1]) is Reason.MALFORMED


def test_key_binding_by_other_key_rejected(issued: tuple[Setup, str]) -> None:
    presentation = _present(issued, ["weights"], holder_key=SigningKey.generate())
    assert _reason(issued, presentation) is Reason.BAD_SIGNATURE


def test_added_disclosure_breaks_sd_hash(issued: tuple[Setup, str]) -> None:
    presentation = _present(issued, ["weights"])
    extra = Credential.parse(issued[1]).disclosures["flop_total"]
    head, kb = presentation.rsplit("~", 1)
    assert _reason(issued, f"{head}~{extra}~{kb}") is Reason.DIGEST_MISMATCH


def test_forged_disclosure_rejected(issued: tuple[Setup, str]) -> None:
    presentation = _present(issued, ["weights"])
    forged, _ = make_disclosure("flop_total", "1")
    jwt, rest = presentation.split("~", 1)
    assert _reason(issued, f"{jwt}~{forged}~{rest}") is Reason.MALFORMED


def test_duplicate_disclosure_rejected(issued: tuple[Setup, str]) -> None:
    presentation = _present(issued, ["weights"])
    jwt, disclosure, rest = presentation.split("~", 2)
    assert _reason(issued, f"{jwt}~{disclosure}~{disclosure}~{rest}") is Reason.MALFORMED


def test_jwt_signed_by_other_key_rejected(issued: tuple[Setup, str]) -> None:
    presentation = _present(issued, ["weights"])
    jwt, rest = presentation.split("~", 1)
    header, payload, _ = jwt.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded["iat"] = decoded["iat"] + 1
    forged = sign_jws(json.loads(base64.urlsafe_b64decode(header + "==")), decoded, SigningKey.generate())
    assert _reason(issued, f"{forged}~{rest}") is Reason.BAD_SIGNATURE


def test_other_agreement_rejected(issued: tuple[Setup, str], tmp_path: Path) -> None:
    other = provision(tmp_path, cap=1)
    with pytest.raises(Rejected) as rejected:
        verify_presentation(
            _present(issued, ["weights"]),
            agreement_payload=other.agreement_payload,
            audience="state-b",
            nonce="n-1",
            now=NOW,
        )
    assert rejected.value.reason is Reason.UNKNOWN_SIGNER


def test_unknown_claim_path_is_input_error(issued: tuple[Setup, str]) -> None:
    with pytest.raises(InputError, match="no claim"):
        _present(issued, ["secret_sauce"])


def test_sd_jwt_package_reads_issuer_part(issued: tuple[Setup, str]) -> None:
    verifier_module = pytest.importorskip("sd_jwt.verifier")
    jwk_module = pytest.importorskip("jwcrypto.jwk")
    setup, credential = issued
    certificate = verify_certificate(
        __import__("flexheg.wire", fromlist=["Envelope"]).Envelope.from_dict(
            json.loads(base64.urlsafe_b64decode(credential.split(".")[1] + "==="))["device_certificate"],
            what="certificate",
        ),
        setup.agreement_payload,
    )
    raw = bytes.fromhex(certificate.identity_key.key.keyval["public"])
    key = jwk_module.JWK(kty="OKP", crv="Ed25519", x=b64url_encode(raw))
    presentation = _present(issued, ["weights", "predicates/run.flop_total < 1e25"])
    without_kb = presentation[: presentation.rindex("~") + 1]
    payload = verifier_module.SDJWTVerifier(without_kb, lambda issuer, header: key).get_verified_payload()
    assert payload["weights"] == DIGEST
    assert payload["predicates"] == {"run.flop_total < 1e25": True}
    assert "flop_total" not in payload


@settings(max_examples=30, deadline=None)
@given(
    st.sets(
        st.sampled_from(
            [
                "weights",
                "flop_total",
                "run_id",
                "steps",
                "evaluations/mmlu@1",
                "predicates/run.flop_total < 1e25",
            ]
        )
    )
)
def test_any_subset_verifies_to_itself(issued: tuple[Setup, str], chosen: set[str]) -> None:
    verified = verify_presentation(
        _present(issued, sorted(chosen)),
        agreement_payload=issued[0].agreement_payload,
        audience="state-b",
        nonce="n-1",
        now=NOW,
    )
    shown = set(verified.claims) | {f"evaluations/{k}" for k in verified.evaluations}
    shown |= {f"predicates/{k}" for k in verified.predicates}
    assert shown == chosen


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_garbage_presentations_rejected_cleanly(issued: tuple[Setup, str], text: str) -> None:
    with pytest.raises(Rejected):
        _verify(issued, text)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_presentations_rejected(issued: tuple[Setup, str], data: st.DataObject) -> None:
    presentation = _present(issued, ["weights", "predicates/run.flop_total < 1e25"])
    index = data.draw(st.integers(0, len(presentation) - 1))
    replacement = data.draw(st.sampled_from("AQgz_-~.0"))
    mutated = presentation[:index] + replacement + presentation[index + 1 :]
    if mutated == presentation:
        return
    with pytest.raises(Rejected):
        _verify(issued, mutated)


def test_disclosure_digest_is_base64url_sha256() -> None:
    disclosure, digest = make_disclosure("name", 1)
    assert digest == disclosure_digest(disclosure)
    assert len(base64.urlsafe_b64decode(digest + "=")) == 32
