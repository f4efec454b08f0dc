"""DSSE envelopes: the one signed-object format of flexheg.

An envelope carries a payload (canonical statement bytes), its payload type and a list of
signatures. Each signature covers the DSSE pre-authentication encoding (PAE) of the payload type
and payload, so a signature can never be moved to a payload of another type. Following the DSSE
specification, ``payload`` and ``sig`` are standard base64.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flexheg.errors import InputError
from flexheg.wire._canonical import loads_strict
from flexheg.wire._fields import Fields
from flexheg.wire._keys import PublicKey, SigningKey
from flexheg.wire._statement import S, Statement, parse_statement

PAYLOAD_TYPE = "application/vnd.flexheg.statement+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of a payload."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InputError(f"{what}: not valid base64") from None


@dataclass(frozen=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope. Use :meth:`sign` to make one and :meth:`verified_by` to check it."""

    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...]

    @classmethod
    def sign(cls, statement: Statement, *keys: SigningKey) -> Envelope:
        payload = statement.encode()
        message = pae(PAYLOAD_TYPE, payload)
        signatures = tuple(EnvelopeSignature(key.keyid, bytes.fromhex(key.sign(message))) for key in keys)
        return cls(payload, PAYLOAD_TYPE, signatures)

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def verified_by(self, keys: Mapping[str, PublicKey]) -> list[PublicKey]:
        """Return the keys in ``keys`` (by key id) that made a valid signature, each once."""
        message = self.pae()
        valid: dict[str, PublicKey] = {}
        for signature in self.signatures:
            key = keys.get(signature.keyid)
            if key is None or key.keyid in valid:
                continue
            if key.verify(signature.sig.hex(), message):
                valid[key.keyid] = key
        return list(valid.values())

    def statement(self, expected: type[S], *, what: str) -> S:
        """Parse the payload as a statement of type ``expected``."""
        if self.payload_type != PAYLOAD_TYPE:
            raise InputError(f"{what}: payload type {self.payload_type!r} is not {PAYLOAD_TYPE!r}")
        return parse_statement(self.payload, expected, what=f"{what} payload")

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")} for s in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_dict(cls, value: object, *, what: str) -> Envelope:
        fields = Fields(value, what)
        payload = _b64decode(fields.str("payload"), fields.path("payload"))
        payload_type = fields.str("payloadType")
        signatures = []
        for index, item in enumerate(fields.list("signatures")):
            where = f"{fields.path('signatures')}[{index}]"
            sig_fields = Fields(item, where)
            keyid = sig_fields.str("keyid")
            sig = _b64decode(sig_fields.str("sig"), f"{where}.sig")
            sig_fields.done()
            signatures.append(EnvelopeSignature(keyid, sig))
        fields.done()
        return cls(payload, payload_type, tuple(signatures))

    @classmethod
    def from_json(cls, data: bytes, *, what: str) -> Envelope:
        return cls.from_dict(loads_strict(data, what=what), what=what)
