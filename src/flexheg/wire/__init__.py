"""Canonical encoding, digests, keys, typed statements and DSSE envelopes."""

from flexheg.wire._canonical import MAX_SAFE_INTEGER, decode, encode, loads_strict
from flexheg.wire._digest import check_digest, sha256_digest
from flexheg.wire._envelope import PAYLOAD_TYPE, Envelope, EnvelopeSignature, pae
from flexheg.wire._fields import Fields
from flexheg.wire._keys import (
    PublicKey,
    SigningKey,
    load_public_key,
    load_signing_key,
    write_key_pair,
)
from flexheg.wire._statement import (
    Statement,
    parse_any_statement,
    parse_statement,
    parse_statement_dict,
    statement_types,
)
from flexheg.wire._time import format_duration, format_time, parse_duration, parse_time

__all__ = [
    "MAX_SAFE_INTEGER",
    "PAYLOAD_TYPE",
    "Envelope",
    "EnvelopeSignature",
    "Fields",
    "PublicKey",
    "SigningKey",
    "Statement",
    "check_digest",
    "decode",
    "encode",
    "format_duration",
    "format_time",
    "load_public_key",
    "load_signing_key",
    "loads_strict",
    "pae",
    "parse_any_statement",
    "parse_duration",
    "parse_statement",
    "parse_statement_dict",
    "parse_time",
    "sha256_digest",
    "statement_types",
    "write_key_pair",
]
