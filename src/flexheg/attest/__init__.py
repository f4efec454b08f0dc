"""Verifiers: appraise device evidence with public keys only (RATS verifier role)."""

from flexheg.attest._verifier import AttestationResult, EvidenceBundle, appraise

__all__ = ["AttestationResult", "EvidenceBundle", "appraise"]
