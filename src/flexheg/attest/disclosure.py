"""Minimal disclosure of training records: SD-JWT (RFC 9901) presentations with key binding.

The device issues a record's SD-JWT (:func:`flexheg.device.records.issue_sd_jwt`): a JWT signed
with its identity key, whose claims (FLOP total, weights, transcript head, each evaluation,
each predicate the device evaluated, ...) are hidden behind salted digests, followed by one
disclosure per claim. The holder (the lab) keeps the issuance and, for each verifier, builds a
presentation with :func:`present`: the JWT, the disclosures it chooses and a key-binding JWT
(KB-JWT) signed with the holder key named in the JWT's ``cnf`` claim. The KB-JWT carries the
verifier's audience and nonce and a hash of the presentation, so a presentation made for one
verifier is rejected by any other, and one made for one nonce is rejected for the next.

The profile: compact serialization only; ``alg`` EdDSA (Ed25519) for the JWT and the KB-JWT;
``_sd_alg`` sha-256; key binding required. The verifier checks the device's certificate against
the manufacturer keys of the agreement, so it needs only the agreement and its own audience and
nonce. Unlike the ``sd-jwt`` package (0.10.4), it rejects disclosures that no digest references,
checks the KB-JWT's ``iat`` against an explicit time and takes the KB-JWT algorithm from the
profile instead of a fixed ES256.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flexheg.device.records import (
    DISCLOSED_CLAIMS,
    JWS_ALG,
    NESTED_CLAIMS,
    SD_ALG,
    SD_JWT_TYP,
    TrainingRecord,
    b64url_decode,
    b64url_encode,
    disclosure_digest,
    sign_jws,
    verify_certificate,
)
from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import Envelope, SigningKey, loads_strict, sha256_digest

logger = logging.getLogger(__name__)

KB_JWT_TYP = "kb+jwt"
MAX_PRESENTATION_BYTES = 1024 * 1024
MAX_NONCE_LENGTH = 256


def _reject(message: str, **details: str) -> Rejected:
    return Rejected(Reason.MALFORMED, message, **details)


@dataclass(frozen=True)
class _Jws:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _parse_jws(token: str, *, what: str) -> _Jws:
    parts = token.split(".")
    if len(parts) != 3:
        raise _reject(f"{what}: a compact JWS has 3 dot-separated parts, this one has {len(parts)}")
    try:
        header = loads_strict(b64url_decode(parts[0], what=f"{what} header"), what=f"{what} header")
        payload = loads_strict(b64url_decode(parts[1], what=f"{what} payload"), what=f"{what} payload")
        signature = b64url_decode(parts[2], what=f"{what} signature")
    except InputError as exc:
        raise _reject(str(exc)) from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise _reject(f"{what}: the header and payload must be JSON objects")
    return _Jws(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def _verify_signature(jws: _Jws, raw_public_key: bytes, *, what: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(jws.signature, jws.signing_input)
    except (InvalidSignature, ValueError):
        raise Rejected(Reason.BAD_SIGNATURE, f"the {what} signature does not verify") from None


def _check_header(jws: _Jws, typ: str, *, what: str) -> None:
    if jws.header.get("alg") != JWS_ALG:
        raise _reject(f"{what}: alg must be {JWS_ALG}", expected=JWS_ALG, actual=str(jws.header.get("alg")))
    if jws.header.get("typ") != typ:
        raise _reject(f"{what}: typ must be {typ}", expected=typ, actual=str(jws.header.get("typ")))
    if "crit" in jws.header:
        raise _reject(f"{what}: the crit header is not supported")


def _jwk_public_bytes(value: object) -> bytes:
    if not isinstance(value, dict) or value.get("kty") != "OKP" or value.get("crv") != "Ed25519":
        raise _reject("cnf.jwk must be an Ed25519 OKP key (RFC 8037)")
    try:
        raw = b64url_decode(value.get("x", ""), what="cnf.jwk.x")
    except InputError as exc:
        raise _reject(str(exc)) from None
    if len(raw) != 32:
        raise _reject("cnf.jwk.x must be 32 bytes")
    return raw


def _split(text: str) -> tuple[str, list[str], str]:
    if len(text) > MAX_PRESENTATION_BYTES:
        raise _reject(f"the SD-JWT is {len(text)} characters; the maximum is {MAX_PRESENTATION_BYTES}")
    if not text.isascii():
        raise _reject("an SD-JWT is ASCII text; this one has other characters")
    parts = text.strip().split("~")
    if len(parts) < 2:
        raise _reject("not an SD-JWT: expected '<JWT>~<disclosures>~<KB-JWT>'")
    return parts[0], parts[1:-1], parts[-1]


def _decode_disclosure(disclosure: str) -> tuple[str, Any]:
    try:
        value = loads_strict(b64url_decode(disclosure, what="disclosure"), what="disclosure")
    except InputError as exc:
        raise _reject(str(exc)) from None
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, str) for v in value[:2]):
        raise _reject(
            "a disclosure must be [salt, claim name, value]; array-element disclosures are not used here"
        )
    name = value[1]
    if name in ("_sd", "...", "_sd_alg"):
        raise _reject(f"a disclosure may not name the reserved claim {name!r}")
    return name, value[2]


# Holding and presenting.


@dataclass(frozen=True)
class Credential:
    """An SD-JWT issuance as its holder keeps it: the JWT and every disclosure, by claim path.

    A claim path is a top-level claim name (``flop_total``), or ``evaluations/NAME@STEP`` or
    ``predicates/CONDITION`` for one member of those objects.
    """

    jwt: str
    disclosures: dict[str, str]

    @classmethod
    def parse(cls, issuance: str) -> Credential:
        jwt, disclosures, last = _split(issuance)
        if last:
            raise _reject("an issuance ends with '~' and carries no key-binding JWT")
        payload = _parse_jws(jwt, what="SD-JWT").payload
        locations = _digest_locations(payload)
        by_path: dict[str, str] = {}
        for disclosure in disclosures:
            parent = locations.get(disclosure_digest(disclosure))
            if parent is None:
                raise _reject("the issuance carries a disclosure that no digest in the JWT references")
            name, _ = _decode_disclosure(disclosure)
            by_path[name if parent == "" else f"{parent}/{name}"] = disclosure
        return cls(jwt, by_path)

    @property
    def paths(self) -> list[str]:
        """Every claim path the holder can disclose, sorted."""
        return sorted(self.disclosures)


def _digest_locations(payload: Mapping[str, Any]) -> dict[str, str]:
    """Map each digest in the payload to its parent: ``""`` for top level, else the container name."""
    locations: dict[str, str] = {}

    def add(digests: object, parent: str) -> None:
        if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
            raise _reject(f"_sd of {parent or 'the payload'} must be a list of strings")
        for digest in digests:
            if digest in locations:
                raise _reject("a digest appears twice in the SD-JWT")
            locations[digest] = parent

    add(payload.get("_sd", []), "")
    for container in NESTED_CLAIMS:
        value = payload.get(container)
        if not isinstance(value, dict) or set(value) - {"_sd"}:
            raise _reject(f"{container} must be an object holding only _sd")
        add(value.get("_sd", []), container)
    return locations


def present(
    issuance: str,
    *,
    disclose: Collection[str],
    holder_key: SigningKey,
    audience: str,
    nonce: str,
    now: int,
) -> str:
    """Build a presentation for one verifier, disclosing only the claim paths in ``disclose``."""
    credential = Credential.parse(issuance)
    unknown = sorted(set(disclose) - set(credential.disclosures))
    if unknown:
        raise InputError(
            f"no claim {', '.join(map(repr, unknown))} in this record; "
            f"available: {', '.join(credential.paths)}"
        )
    if not audience or not nonce or len(nonce) > MAX_NONCE_LENGTH:
        raise InputError("the audience and a nonce of 1 to 256 characters are required for key binding")
    chosen = [credential.disclosures[path] for path in sorted(set(disclose))]
    without_kb = "~".join([credential.jwt, *chosen]) + "~"
    kb_payload = {
        "aud": audience,
        "nonce": nonce,
        "iat": now,
        "sd_hash": b64url_encode(hashlib.sha256(without_kb.encode("ascii")).digest()),
    }
    return without_kb + sign_jws({"alg": JWS_ALG, "typ": KB_JWT_TYP}, kb_payload, holder_key)


# Verifying.


@dataclass(frozen=True)
class VerifiedPresentation:
    """The claims a verified presentation discloses, and the device that vouches for them."""

    device_id: str
    model: str
    agreement: str
    issued_at: int
    claims: dict[str, Any]
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)
    predicates: dict[str, bool] = field(default_factory=dict)

    @property
    def flop_total(self) -> int | None:
        value = self.claims.get("flop_total")
        return None if value is None else int(value)

    def require_predicate(self, condition: str) -> None:
        """Raise Rejected unless the presentation discloses ``condition`` and the device found it true."""
        if condition not in self.predicates:
            raise Rejected(
                Reason.RECORD_MISMATCH,
                f"the presentation does not disclose the predicate {condition!r}",
                expected=condition,
                actual=", ".join(sorted(self.predicates)) or "no predicates",
            )
        if not self.predicates[condition]:
            raise Rejected(
                Reason.RECORD_MISMATCH,
                f"the device found the predicate {condition!r} false for this run",
                expected="true",
                actual="false",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": True,
            "device_id": self.device_id,
            "model": self.model,
            "agreement": self.agreement,
            "issued_at": self.issued_at,
            "claims": self.claims,
            "evaluations": self.evaluations,
            "predicates": self.predicates,
        }


def _collect_disclosures(
    payload: Mapping[str, Any], disclosures: list[str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, bool]]:
    """Match each disclosure to the one digest that references it; return claims, evaluations, predicates."""
    locations = _digest_locations(payload)
    claims: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {container: {} for container in NESTED_CLAIMS}
    seen: set[str] = set()
    for disclosure in disclosures:
        digest = disclosure_digest(disclosure)
        if digest in seen:
            raise _reject("the presentation carries the same disclosure twice")
        seen.add(digest)
        parent = locations.get(digest)
        if parent is None:
            raise _reject("the presentation carries a disclosure that no digest in the SD-JWT references")
        name, value = _decode_disclosure(disclosure)
        if parent == "" and name not in DISCLOSED_CLAIMS:
            raise _reject(f"the disclosure names the unknown claim {name!r}")
        target = claims if parent == "" else nested[parent]
        if name in target:
            raise _reject(f"the claim {name!r} is disclosed twice")
        target[name] = value
    predicates: dict[str, bool] = {}
    for condition, holds in nested["predicates"].items():
        if not isinstance(holds, bool):
            raise _reject(f"the predicate {condition!r} has no boolean value")
        predicates[condition] = holds
    return claims, nested["evaluations"], predicates


def _verify_key_binding(
    kb: _Jws,
    payload: Mapping[str, Any],
    without_kb: str,
    *,
    audience: str,
    nonce: str,
    now: int,
    max_age: int,
) -> None:
    """Check the KB-JWT's signature by the ``cnf`` key, audience, nonce, time and ``sd_hash``."""
    _check_header(kb, KB_JWT_TYP, what="KB-JWT")
    cnf = payload.get("cnf")
    _verify_signature(kb, _jwk_public_bytes(cnf.get("jwk") if isinstance(cnf, dict) else None), what="KB-JWT")
    kb_payload = kb.payload
    if kb_payload.get("aud") != audience:
        raise Rejected(
            Reason.WRONG_AUDIENCE,
            "the presentation was made for another verifier",
            expected=audience,
            actual=str(kb_payload.get("aud")),
        )
    if kb_payload.get("nonce") != nonce:
        raise Rejected(
            Reason.STALE_NONCE,
            "the presentation answers another nonce",
            expected=nonce,
            actual=str(kb_payload.get("nonce")),
        )
    kb_time = kb_payload.get("iat")
    if (
        not isinstance(kb_time, int)
        or isinstance(kb_time, bool)
        or not now - max_age <= kb_time <= now + max_age
    ):
        raise Rejected(
            Reason.STALE_NONCE,
            "the key-binding JWT was made too far from the verifier's time",
            expected=f"iat within {max_age} s of {now}",
            actual=str(kb_time),
        )
    expected_hash = b64url_encode(hashlib.sha256(without_kb.encode("ascii")).digest())
    if kb_payload.get("sd_hash") != expected_hash:
        raise Rejected(
            Reason.DIGEST_MISMATCH,
            "the key-binding JWT was made for another selection of disclosures",
            expected=expected_hash,
            actual=str(kb_payload.get("sd_hash")),
        )


def verify_presentation(
    presentation: str,
    *,
    agreement_payload: bytes,
    audience: str,
    nonce: str,
    now: int,
    max_age: int = 300,
) -> VerifiedPresentation:
    """Verify a key-bound presentation of a training-record SD-JWT.

    Steps:
      1. the presentation splits into JWT, disclosures and KB-JWT (``malformed``);
      2. the JWT header is this profile's (``malformed``) and its certificate was issued by a
         manufacturer of the agreement for this agreement (``unknown-signer``, ``wrong-agreement``);
      3. the certified identity key signed the JWT (``bad-signature``), which names that device
         and this agreement;
      4. every disclosure is referenced exactly once by a digest in the JWT (``malformed``);
      5. the KB-JWT is signed by the holder key in ``cnf`` (``bad-signature``), names this
         verifier (``wrong-audience``) and its nonce, is fresh (``stale-nonce``) and hashes this
         exact presentation (``digest-mismatch``).
    """
    # Step 1.
    jwt_text, disclosures, kb_text = _split(presentation)
    if not kb_text:
        raise _reject("the presentation has no key-binding JWT; a holder must bind it to this verifier")
    jwt = _parse_jws(jwt_text, what="SD-JWT")
    kb = _parse_jws(kb_text, what="KB-JWT")

    # Step 2.
    _check_header(jwt, SD_JWT_TYP, what="SD-JWT")
    payload = jwt.payload
    if payload.get("_sd_alg") != SD_ALG or payload.get("vct") != TrainingRecord.TYPE:
        raise _reject(f"the SD-JWT is not a {TrainingRecord.TYPE} credential hashed with {SD_ALG}")
    try:
        certificate_envelope = Envelope.from_dict(
            payload.get("device_certificate"), what="device_certificate"
        )
    except InputError as exc:
        raise _reject(str(exc)) from None
    certificate = verify_certificate(certificate_envelope, agreement_payload)

    # Step 3.
    identity = certificate.identity_key
    _verify_signature(jwt, bytes.fromhex(identity.key.keyval["public"]), what="SD-JWT")
    if payload.get("iss") != certificate.device_id:
        raise Rejected(
            Reason.BAD_SIGNATURE,
            "the SD-JWT names another device than its certificate",
            expected=certificate.device_id,
            actual=str(payload.get("iss")),
        )
    agreement_digest = sha256_digest(agreement_payload)
    if payload.get("agreement") != agreement_digest:
        raise Rejected(
            Reason.WRONG_AGREEMENT,
            "the SD-JWT reports another agreement",
            expected=agreement_digest,
            actual=str(payload.get("agreement")),
        )
    issued_at = payload.get("iat")
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        raise _reject("the SD-JWT has no integer iat")

    # Step 4.
    claims, evaluations, predicates = _collect_disclosures(payload, disclosures)

    # Step 5.
    _verify_key_binding(
        kb,
        payload,
        presentation.strip()[: -len(kb_text)],
        audience=audience,
        nonce=nonce,
        now=now,
        max_age=max_age,
    )
    logger.debug(
        "verified a presentation from %s with %d disclosures", certificate.device_id, len(disclosures)
    )
    return VerifiedPresentation(
        device_id=certificate.device_id,
        model=certificate.model,
        agreement=agreement_digest,
        issued_at=issued_at,
        claims=claims,
        evaluations=evaluations,
        predicates=predicates,
    )
