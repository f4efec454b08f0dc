"""The verifier: appraises device evidence against the manufacturer keys and the agreement.

In RATS terms (RFC 9334) the device is the attester, this module the verifier, and
:class:`AttestationResult` the attestation result. The verifier needs only public data: the
agreement (which lists the manufacturer keys) and the nonce it chose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flexheg.device import Agreement, DeviceCertificate, Evidence
from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import Envelope, Fields, loads_strict, parse_statement, sha256_digest


@dataclass(frozen=True)
class EvidenceBundle:
    """Evidence as a device hands it to a verifier: the signed claims and the manufacturer's certificate."""

    evidence: Envelope
    certificate: Envelope

    def to_dict(self) -> dict[str, Any]:
        return {"evidence": self.evidence.to_dict(), "certificate": self.certificate.to_dict()}

    @classmethod
    def from_json(cls, data: bytes, *, what: str) -> EvidenceBundle:
        fields = Fields(loads_strict(data, what=what), what)
        bundle = cls(
            evidence=Envelope.from_dict(fields.raw("evidence"), what=fields.path("evidence")),
            certificate=Envelope.from_dict(fields.raw("certificate"), what=fields.path("certificate")),
        )
        fields.done()
        return bundle


@dataclass(frozen=True)
class AttestationResult:
    """The verifier's verdict on one piece of evidence, with the claims it vouches for."""

    device_id: str
    model: str
    evidence: Evidence

    def to_dict(self) -> dict[str, Any]:
        return {"verified": True, "device_id": self.device_id, "model": self.model, **self.evidence.to_dict()}


def appraise(
    bundle: EvidenceBundle,
    *,
    agreement_payload: bytes,
    nonce: str,
    now: int,
    max_age: int = 300,
    device_id: str | None = None,
) -> AttestationResult:
    """Appraise evidence.

    Steps:
      1. the certificate is signed by a manufacturer key of the agreement (``unknown-signer``,
         ``bad-signature``) and is for this agreement (``wrong-agreement``);
      2. the evidence is signed by the certified identity key (``bad-signature``);
      3. the evidence names this agreement (``wrong-agreement``) and the certified device, which is
         the device the verifier asked when it names one (``wrong-device``);
      4. the evidence is bound to the verifier's nonce and is recent (``stale-nonce``).
    """
    agreement_digest = sha256_digest(agreement_payload)
    try:
        agreement = parse_statement(agreement_payload, Agreement, what="agreement")
        certificate = bundle.certificate.statement(DeviceCertificate, what="certificate")
        evidence = bundle.evidence.statement(Evidence, what="evidence")
    except InputError as exc:
        raise Rejected(Reason.MALFORMED, str(exc)) from None

    # Step 1: the manufacturer certified the device.
    manufacturers = {k.keyid: k for k in agreement.manufacturers}
    if not any(s.keyid in manufacturers for s in bundle.certificate.signatures):
        raise Rejected(
            Reason.UNKNOWN_SIGNER,
            "the device certificate is not signed by a manufacturer key of the agreement",
            expected=", ".join(sorted(manufacturers)),
            actual=", ".join(s.keyid for s in bundle.certificate.signatures) or "no signatures",
        )
    if not bundle.certificate.verified_by(manufacturers):
        raise Rejected(
            Reason.BAD_SIGNATURE, "the manufacturer's signature on the certificate does not verify"
        )
    if certificate.agreement != agreement_digest:
        raise Rejected(
            Reason.WRONG_AGREEMENT,
            "the device was certified under another agreement",
            expected=agreement_digest,
            actual=certificate.agreement,
        )

    # Step 2: the certified identity key signed the evidence.
    identity = certificate.identity_key
    if not bundle.evidence.verified_by({identity.keyid: identity}):
        raise Rejected(
            Reason.BAD_SIGNATURE,
            f"the evidence is not signed by the identity key certified for {certificate.device_id}",
            expected=identity.keyid,
            actual=", ".join(s.keyid for s in bundle.evidence.signatures) or "no signatures",
        )

    # Step 3: agreement and device binding.
    if evidence.agreement != agreement_digest:
        raise Rejected(
            Reason.WRONG_AGREEMENT,
            "the evidence reports another agreement",
            expected=agreement_digest,
            actual=evidence.agreement,
        )
    if evidence.device_id != certificate.device_id:
        raise Rejected(
            Reason.WRONG_DEVICE,
            "the evidence names another device than its certificate",
            expected=certificate.device_id,
            actual=evidence.device_id,
        )

    if device_id is not None and certificate.device_id != device_id:
        raise Rejected(
            Reason.WRONG_DEVICE,
            "the evidence comes from another device than the one asked",
            expected=device_id,
            actual=certificate.device_id,
        )

    # Step 4: freshness.
    if evidence.nonce != nonce:
        raise Rejected(
            Reason.STALE_NONCE,
            "the evidence is bound to another nonce",
            expected=nonce,
            actual=evidence.nonce,
        )
    if not now - max_age <= evidence.time <= now + max_age:
        raise Rejected(
            Reason.STALE_NONCE,
            "the evidence was produced too far from the verifier's time",
            expected=f"within {max_age} s of {now}",
            actual=str(evidence.time),
        )
    return AttestationResult(certificate.device_id, certificate.model, evidence)
