"""Signed notes, log checkpoints, witness cosignatures and the device's log-bundle check.

Formats, all C2SP v1.0.0:

* signed-note: a UTF-8 text that ends in a newline, a blank line, then one or more signature lines
  ``— <key name> base64(4-byte key id || signature)``. An Ed25519 note key has the key id
  ``SHA-256(name || "\\n" || 0x01 || public key)[:4]`` and signs the text bytes.
* tlog-checkpoint: the note text is the log origin, the tree size in decimal, the base64 root hash
  and optional extension lines.
* tlog-cosignature (``cosignature/v1``, Ed25519): key id ``SHA-256(name || "\\n" || 0x04 ||
  public key)[:4]``; the signature is an 8-byte big-endian timestamp followed by an Ed25519
  signature over ``"cosignature/v1\\ntime <timestamp>\\n" || note text``.

A witness policy names witness keys and a quorum in the way C2SP tlog-policy does, and counts
distinct witnesses: a witness that put two cosignature lines on one checkpoint counts once.

:func:`verify_log_bundle` is the single check a guarantee processor runs before it accepts logged
statements. It is pure: it takes bytes, keys and the newest checkpoint the device has stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import Fields, encode, loads_strict
from flexheg.wire.merkle import HASH_SIZE, leaf_hash, verify_consistency, verify_inclusion

logger = logging.getLogger(__name__)

SIGNATURE_PREFIX = "\u2014 "
"""Start of every note signature line: an em dash (U+2014) and a space."""

ED25519_TYPE = 0x01
COSIGNATURE_V1_TYPE = 0x04
MAX_NOTE_SIZE = 1 << 20
MAX_SIGNATURES = 100
MAX_TIMESTAMP = (1 << 63) - 1
BUNDLE_TYPE = "flexheg.dev/log-bundle/v1"


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InputError(f"{what}: {text[:60]!r} is not valid standard base64") from None
    if _b64encode(data) != text:
        raise InputError(f"{what}: base64 is not in canonical padded form")
    return data


def check_key_name(name: str, *, what: str) -> str:
    """Return ``name`` if it is a valid note key name: non-empty, no whitespace, no ``+``."""
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise InputError(
            f"{what}: key name {name!r} is invalid; it must be non-empty and contain no "
            "whitespace and no '+'"
        )
    return name


def _key_id(name: str, key_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([key_type]) + public).digest()[:4]


# Keys.


@dataclass(frozen=True)
class NoteVerifier:
    """A named Ed25519 public key that checks note signatures (0x01) or cosignatures (0x04)."""

    name: str
    key_type: int
    public: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name, what="note verifier")
        if self.key_type not in (ED25519_TYPE, COSIGNATURE_V1_TYPE):
            raise InputError(
                f"note verifier {self.name}: signature type 0x{self.key_type:02x} is not "
                "supported; use 0x01 (Ed25519) or 0x04 (cosignature/v1)"
            )
        if len(self.public) != 32:
            raise InputError(f"note verifier {self.name}: an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.key_type, self.public)

    def to_vkey(self) -> str:
        """Return the C2SP verifier key string ``name+keyid+base64(type || key)``."""
        material = _b64encode(bytes([self.key_type]) + self.public)
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def from_vkey(cls, text: str, *, what: str = "verifier key") -> NoteVerifier:
        """Parse a C2SP verifier key string and check its key id."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise InputError(f"{what}: {text!r} is not a verifier key; expected name+keyid+key")
        name, key_id_hex, material_b64 = parts
        material = _b64decode(material_b64, what)
        if len(material) != 33:
            raise InputError(f"{what}: key material is {len(material)} bytes; expected 33")
        verifier = cls(name, material[0], material[1:])
        if verifier.key_id.hex() != key_id_hex:
            raise InputError(
                f"{what}: key id {key_id_hex!r} does not match the key; expected "
                f"{verifier.key_id.hex()}"
            )
        return verifier

    def _verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 private key that signs notes (log key) or cosigns checkpoints (witness)."""

    name: str
    private: Ed25519PrivateKey

    def __post_init__(self) -> None:
        check_key_name(self.name, what="note signer")

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, name: str, pem: bytes, *, what: str) -> NoteSigner:
        """Load an unencrypted PKCS#8 PEM Ed25519 key, as written by ``flexheg key generate``."""
        try:
            private = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{what}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise InputError(f"{what}: only Ed25519 private keys can sign notes")
        return cls(name, private)

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def verifier(self) -> NoteVerifier:
        """Return the verifier of this key's note signatures (type 0x01)."""
        return NoteVerifier(self.name, ED25519_TYPE, self.public)

    def cosignature_verifier(self) -> NoteVerifier:
        """Return the verifier of this key's cosignatures (type 0x04)."""
        return NoteVerifier(self.name, COSIGNATURE_V1_TYPE, self.public)

    def sign_note(self, text: str) -> NoteSignature:
        """Sign a note text as the log does."""
        _check_note_text(text)
        key_id = _key_id(self.name, ED25519_TYPE, self.public)
        return NoteSignature(self.name, key_id, self.private.sign(text.encode("utf-8")))

    def cosign(self, text: str, timestamp: int) -> NoteSignature:
        """Cosign a checkpoint text at ``timestamp`` (POSIX seconds) as a witness does."""
        _check_note_text(text)
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise InputError(f"cosignature timestamp {timestamp} is outside 0..2**63-1")
        key_id = _key_id(self.name, COSIGNATURE_V1_TYPE, self.public)
        signature = self.private.sign(_cosigned_message(text, timestamp))
        return NoteSignature(self.name, key_id, struct.pack(">Q", timestamp) + signature)


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


# Signed notes.


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note: key name, 4-byte key id and signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise InputError("note text must end with a newline")
    for ch in text:
        if ch != "\n" and (ord(ch) < 0x20 or ord(ch) == 0x7F):
            raise InputError(f"note text contains the control character {ch!r}")


@dataclass(frozen=True)
class SignedNote:
    """A note text and its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")

    def with_signatures(self, extra: Iterable[NoteSignature]) -> SignedNote:
        return SignedNote(self.text, self.signatures + tuple(extra))

    @classmethod
    def parse(cls, data: bytes | str, *, what: str = "signed note") -> SignedNote:
        """Parse a signed note strictly; reject malformed lines instead of skipping them."""
        if isinstance(data, bytes):
            if len(data) > MAX_NOTE_SIZE:
                raise InputError(f"{what}: {len(data)} bytes is over the limit of {MAX_NOTE_SIZE}")
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{what}: not valid UTF-8") from None
        if len(data) > MAX_NOTE_SIZE:
            raise InputError(f"{what}: note is over the limit of {MAX_NOTE_SIZE} characters")
        split = data.rfind("\n\n")
        if split < 0:
            raise InputError(f"{what}: no blank line before the signatures")
        text, block = data[: split + 1], data[split + 2 :]
        try:
            _check_note_text(text)
        except InputError as exc:
            raise InputError(f"{what}: {exc}") from None
        if not block.endswith("\n"):
            raise InputError(f"{what}: the last signature line must end with a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise InputError(f"{what}: {len(lines)} signatures is over the limit of {MAX_SIGNATURES}")
        signatures = tuple(_parse_signature_line(line, f"{what} signature {i}")
                           for i, line in enumerate(lines))
        return cls(text, signatures)


def _parse_signature_line(line: str, what: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise InputError(f"{what}: line does not start with an em dash and a space")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or " " in encoded:
        raise InputError(f"{what}: expected '— <key name> <base64 signature>'")
    check_key_name(name, what=what)
    raw = _b64decode(encoded, what)
    if len(raw) < 5:
        raise InputError(f"{what}: signature is {len(raw)} bytes; it needs a key id and a signature")
    return NoteSignature(name, raw[:4], raw[4:])


def verify_note(note: SignedNote, verifier: NoteVerifier) -> bool:
    """Return True if ``note`` carries a valid Ed25519 note signature by ``verifier``."""
    if verifier.key_type != ED25519_TYPE:
        raise InputError(f"{verifier.name}: a note signature needs a type 0x01 verifier key")
    message = note.text.encode("utf-8")
    return any(
        sig.name == verifier.name
        and sig.key_id == verifier.key_id
        and verifier._verify(sig.signature, message)
        for sig in note.signatures
    )


def cosignature_time(note: SignedNote, verifier: NoteVerifier) -> int | None:
    """Return the timestamp of the newest valid cosignature by ``verifier``, or None."""
    if verifier.key_type != COSIGNATURE_V1_TYPE:
        raise InputError(f"{verifier.name}: a cosignature needs a type 0x04 verifier key")
    newest: int | None = None
    for sig in note.signatures:
        if sig.name != verifier.name or sig.key_id != verifier.key_id:
            continue
        if len(sig.signature) != 8 + 64:
            continue
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        if timestamp > MAX_TIMESTAMP:
            continue
        message = _cosigned_message(note.text, timestamp)
        if verifier._verify(sig.signature[8:], message):
            newest = timestamp if newest is None else max(newest, timestamp)
    return newest


# Checkpoints.


@dataclass(frozen=True)
class Checkpoint:
    """A log checkpoint (origin, tree size, root hash, extension lines) and its signed note."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()
    note: SignedNote | None = field(default=None, compare=False)

    def text(self) -> str:
        """Return the checkpoint body: the note text that the log signs."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    def signed_note(self) -> SignedNote:
        if self.note is None:
            raise InputError(f"checkpoint {self.origin}@{self.size} has no signatures")
        return self.note

    def to_bytes(self) -> bytes:
        return self.signed_note().to_bytes()

    def with_signatures(self, extra: Iterable[NoteSignature]) -> Checkpoint:
        note = self.signed_note().with_signatures(extra)
        return Checkpoint(self.origin, self.size, self.root_hash, self.extensions, note)

    @classmethod
    def from_text(cls, text: str, *, what: str = "checkpoint") -> Checkpoint:
        """Parse an unsigned checkpoint body."""
        _check_note_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InputError(f"{what}: a checkpoint has at least 3 lines (origin, size, root)")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise InputError(f"{what}: the origin line is empty")
        if not (size_text.isascii() and size_text.isdigit()) or (
            len(size_text) > 1 and size_text[0] == "0"
        ):
            raise InputError(f"{what}: tree size {size_text!r} is not a decimal without leading zeros")
        size = int(size_text)
        if size > (1 << 63) - 1:
            raise InputError(f"{what}: tree size {size} is above 2**63-1")
        root = _b64decode(root_text, f"{what} root hash")
        if len(root) != HASH_SIZE:
            raise InputError(f"{what}: root hash is {len(root)} bytes; expected {HASH_SIZE}")
        if any(not line for line in extensions):
            raise InputError(f"{what}: extension lines must not be empty")
        return cls(origin, size, root, tuple(extensions))

    @classmethod
    def parse(cls, data: bytes | str, *, what: str = "checkpoint") -> Checkpoint:
        """Parse a signed checkpoint note (signatures are parsed, not verified)."""
        note = SignedNote.parse(data, what=what)
        body = cls.from_text(note.text, what=what)
        return cls(body.origin, body.size, body.root_hash, body.extensions, note)


def sign_checkpoint(
    signer: NoteSigner, *, size: int, root_hash: bytes, extensions: Sequence[str] = ()
) -> Checkpoint:
    """Make a checkpoint of the log named by ``signer`` and sign it."""
    body = Checkpoint(signer.name, size, root_hash, tuple(extensions))
    text = body.text()
    note = SignedNote(text, (signer.sign_note(text),))
    return Checkpoint(body.origin, body.size, body.root_hash, body.extensions, note)


def verify_checkpoint(checkpoint: Checkpoint, log_key: NoteVerifier) -> None:
    """Check that the log named by ``log_key`` signed ``checkpoint``.

    Raises:
        Rejected: ``not-logged`` when the origin is another log's or the log signature is
            missing or invalid.
    """
    if checkpoint.origin != log_key.name:
        raise Rejected(
            Reason.NOT_LOGGED,
            f"checkpoint is from log {checkpoint.origin!r}, not from the configured log",
            expected=log_key.name,
            actual=checkpoint.origin,
        )
    if not verify_note(checkpoint.signed_note(), log_key):
        raise Rejected(
            Reason.NOT_LOGGED,
            f"checkpoint {checkpoint.origin}@{checkpoint.size} has no valid signature by the log key",
            expected=f"a signature by {log_key.to_vkey()}",
            actual=", ".join(s.name for s in checkpoint.signed_note().signatures) or "none",
        )


# Witness policy.


@dataclass(frozen=True)
class WitnessResult:
    """Outcome of a witness policy: the witnesses with a valid cosignature, the missing ones, the quorum."""

    satisfied: bool
    cosigned: tuple[str, ...]
    missing: tuple[str, ...]
    needed: int

    def describe(self) -> str:
        total = len(self.cosigned) + len(self.missing)
        text = f"{len(self.cosigned)} of {total} witnesses cosigned ({self.needed} needed)"
        if self.missing:
            text += "; missing: " + ", ".join(self.missing)
        return text


@dataclass(frozen=True)
class WitnessPolicy:
    """``quorum`` of the named witnesses must cosign. Counts distinct witnesses, not lines."""

    witnesses: tuple[NoteVerifier, ...]
    quorum: int

    def __post_init__(self) -> None:
        names: set[str] = set()
        keys: set[bytes] = set()
        for witness in self.witnesses:
            if witness.key_type != COSIGNATURE_V1_TYPE:
                raise InputError(
                    f"witness {witness.name}: key type 0x{witness.key_type:02x} is not a "
                    "cosignature/v1 key (0x04)"
                )
            if witness.name in names:
                raise InputError(f"witness {witness.name!r} is listed twice")
            if witness.public in keys:
                raise InputError(
                    f"witness {witness.name!r} uses a key that another witness also uses; one key "
                    "must count as one witness"
                )
            names.add(witness.name)
            keys.add(witness.public)
        if not 1 <= self.quorum <= len(self.witnesses):
            raise InputError(
                f"witness quorum {self.quorum} is invalid for {len(self.witnesses)} witnesses; "
                "it must be between 1 and the number of witnesses"
            )

    def evaluate(self, checkpoint: Checkpoint) -> WitnessResult:
        note = checkpoint.signed_note()
        cosigned = tuple(w.name for w in self.witnesses if cosignature_time(note, w) is not None)
        missing = tuple(w.name for w in self.witnesses if w.name not in cosigned)
        return WitnessResult(len(cosigned) >= self.quorum, cosigned, missing, self.quorum)

    def require(self, checkpoint: Checkpoint) -> WitnessResult:
        """Raise ``witness-quorum-not-met`` unless enough distinct witnesses cosigned."""
        result = self.evaluate(checkpoint)
        if not result.satisfied:
            raise Rejected(
                Reason.WITNESS_QUORUM_NOT_MET,
                f"checkpoint {checkpoint.origin}@{checkpoint.size}: {result.describe()}",
                expected=f"{result.needed} distinct witnesses",
                actual=f"{len(result.cosigned)}: {', '.join(result.cosigned) or 'none'}",
            )
        return result

    def to_text(self, log_key: NoteVerifier | None = None) -> str:
        """Write the policy in the line format of C2SP tlog-policy."""
        lines = [f"log {log_key.to_vkey()}"] if log_key is not None else []
        lines += [f"witness {w.name} {w.to_vkey()}" for w in self.witnesses]
        members = " ".join(w.name for w in self.witnesses)
        lines += [f"group quorum {self.quorum} {members}", "quorum quorum"]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, *, what: str = "witness policy") -> tuple[WitnessPolicy, NoteVerifier | None]:
        """Parse the k-of-n subset of C2SP tlog-policy: one flat group named by ``quorum``.

        Lines: ``log <vkey>``, ``witness <name> <vkey>``, ``group <name> <k|all|any> <member>...``
        and ``quorum <group or witness name>``. Blank lines and ``#`` comments are ignored.
        Returns the policy and the log key, if the text names one.
        """
        log_key: NoteVerifier | None = None
        witnesses: dict[str, NoteVerifier] = {}
        groups: dict[str, tuple[str, list[str]]] = {}
        quorum_name: str | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            where = f"{what} line {number}"
            words = raw.split("#", 1)[0].split()
            if not words:
                continue
            keyword, args = words[0], words[1:]
            if keyword == "log" and len(args) >= 1:
                log_key = NoteVerifier.from_vkey(args[0], what=where)
            elif keyword == "witness" and len(args) >= 2:
                verifier = NoteVerifier.from_vkey(args[1], what=where)
                if verifier.name != args[0]:
                    raise InputError(f"{where}: witness name {args[0]!r} differs from its key name")
                witnesses[args[0]] = verifier
            elif keyword == "group" and len(args) >= 3:
                groups[args[0]] = (args[1], args[2:])
            elif keyword == "quorum" and len(args) == 1:
                quorum_name = args[0]
            else:
                raise InputError(f"{where}: cannot read {raw.strip()!r}")
        if quorum_name is None:
            raise InputError(f"{what}: no quorum line; add 'quorum <group name>'")
        if quorum_name in witnesses:
            return cls((witnesses[quorum_name],), 1), log_key
        if quorum_name not in groups:
            raise InputError(f"{what}: quorum group or witness {quorum_name!r} not found")
        threshold, members = groups[quorum_name]
        unknown = [m for m in members if m not in witnesses]
        if unknown:
            raise InputError(
                f"{what}: group {quorum_name!r} names unknown witnesses {unknown}; nested groups "
                "are not supported"
            )
        count = {"all": len(members), "any": 1}.get(threshold)
        if count is None:
            if not threshold.isdigit():
                raise InputError(f"{what}: group threshold {threshold!r} is not a number, all or any")
            count = int(threshold)
        return cls(tuple(witnesses[m] for m in members), count), log_key


# Log bundles.


@dataclass(frozen=True)
class InclusionProof:
    """The index of one entry and its RFC 9162 inclusion proof in the bundle's checkpoint."""

    index: int
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof between two tree sizes of one log."""

    old_size: int
    new_size: int
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class LogBundle:
    """Proofs that a device checks before it accepts logged statements (``docs/translog.md``).

    ``inclusion[i]`` proves the i-th entry that the device checks. ``consistency`` connects the
    bundle's checkpoint with the newest checkpoint the device has seen, in whichever direction.
    """

    checkpoint: Checkpoint
    inclusion: tuple[InclusionProof, ...]
    consistency: ConsistencyProof | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "type": BUNDLE_TYPE,
            "checkpoint": self.checkpoint.to_bytes().decode("utf-8"),
            "inclusion": [
                {"index": p.index, "proof": [_b64encode(h) for h in p.proof]}
                for p in self.inclusion
            ],
        }
        if self.consistency is not None:
            result["consistency"] = {
                "old_size": self.consistency.old_size,
                "new_size": self.consistency.new_size,
                "proof": [_b64encode(h) for h in self.consistency.proof],
            }
        return result

    def to_json(self) -> bytes:
        return encode(self.to_dict())

    @classmethod
    def from_dict(cls, value: object, *, what: str = "log bundle") -> LogBundle:
        fields = Fields(value, what)
        type_name = fields.str("type")
        if type_name != BUNDLE_TYPE:
            raise InputError(f"{what}: type {type_name!r} is not {BUNDLE_TYPE!r}")
        checkpoint = Checkpoint.parse(fields.str("checkpoint"), what=fields.path("checkpoint"))
        inclusion = []
        for position, item in enumerate(fields.list("inclusion")):
            entry = Fields(item, f"{fields.path('inclusion')}[{position}]")
            index = entry.int("index", minimum=0)
            proof = _read_hashes(entry, "proof")
            entry.done()
            inclusion.append(InclusionProof(index, proof))
        consistency = None
        if fields.optional_raw("consistency") is not None:
            item = fields.object("consistency")
            consistency = ConsistencyProof(
                item.int("old_size", minimum=0), item.int("new_size", minimum=0),
                _read_hashes(item, "proof"),
            )
            item.done()
        fields.done()
        return cls(checkpoint, tuple(inclusion), consistency)

    @classmethod
    def from_json(cls, data: bytes, *, what: str = "log bundle") -> LogBundle:
        return cls.from_dict(loads_strict(data, what=what), what=what)


def _read_hashes(fields: Fields, name: str) -> tuple[bytes, ...]:
    hashes = []
    for position, item in enumerate(fields.str_list(name)):
        value = _b64decode(item, f"{fields.path(name)}[{position}]")
        if len(value) != HASH_SIZE:
            raise InputError(f"{fields.path(name)}[{position}]: hash is {len(value)} bytes")
        hashes.append(value)
    return tuple(hashes)


def check_consistent(
    old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]
) -> None:
    """Check that checkpoint ``new`` extends checkpoint ``old`` of the same log.

    Raises:
        Rejected: ``inconsistent-log`` when the proof does not connect the two roots.
    """
    if old.origin != new.origin:
        raise Rejected(
            Reason.INCONSISTENT_LOG,
            "the two checkpoints are from different logs",
            expected=old.origin,
            actual=new.origin,
        )
    try:
        verify_consistency(
            old_size=old.size, new_size=new.size, old_root=old.root_hash,
            new_root=new.root_hash, proof=proof,
        )
    except Rejected as exc:
        raise Rejected(
            Reason.INCONSISTENT_LOG,
            f"checkpoint {new.origin}@{new.size} is not shown to extend the one at size "
            f"{old.size}: {exc.message}",
            expected=exc.expected,
            actual=exc.actual,
        ) from None


def verify_log_bundle(
    bundle: LogBundle | bytes,
    *,
    entries: Sequence[bytes],
    log_key: NoteVerifier,
    witnesses: Sequence[NoteVerifier],
    quorum: int,
    newest_seen: Checkpoint | None,
) -> Checkpoint:
    """Check that every entry is in the log under a witnessed checkpoint consistent with the past.

    Steps:
      1. parse the bundle (``malformed``);
      2. the log signed the checkpoint (``not-logged``);
      3. ``quorum`` distinct configured witnesses cosigned it (``witness-quorum-not-met``);
      4. each entry has an inclusion proof under the checkpoint (``not-logged``, ``bad-proof``);
      5. the checkpoint and ``newest_seen`` are consistent, in whichever order their sizes are
         (``inconsistent-log``).

    Returns:
        The newer of the bundle's checkpoint and ``newest_seen``: what the device stores as the
        newest checkpoint it has seen. An older but consistent bundle never moves it back.

    Raises:
        Rejected: with the reason of the failed step.
        InputError: the witness configuration is invalid (no witnesses or a bad quorum).
    """
    policy = WitnessPolicy(tuple(witnesses), quorum)

    # Step 1: parse.
    if isinstance(bundle, bytes):
        try:
            bundle = LogBundle.from_json(bundle)
        except InputError as exc:
            raise Rejected(Reason.MALFORMED, str(exc)) from None
    checkpoint = bundle.checkpoint

    # Step 2: log signature.
    verify_checkpoint(checkpoint, log_key)

    # Step 3: witness quorum.
    policy.require(checkpoint)

    # Step 4: inclusion of every entry.
    if len(bundle.inclusion) != len(entries):
        raise Rejected(
            Reason.NOT_LOGGED,
            "the bundle does not prove every entry",
            expected=f"{len(entries)} inclusion proofs",
            actual=str(len(bundle.inclusion)),
        )
    for position, (entry, inclusion) in enumerate(zip(entries, bundle.inclusion, strict=True)):
        if inclusion.index >= checkpoint.size:
            raise Rejected(
                Reason.NOT_LOGGED,
                f"entry {position} has index {inclusion.index}, outside the checkpoint of size "
                f"{checkpoint.size}",
            )
        verify_inclusion(
            leaf_hash(entry), index=inclusion.index, size=checkpoint.size,
            proof=inclusion.proof, root=checkpoint.root_hash,
        )

    # Step 5: consistency with the newest checkpoint seen.
    if newest_seen is None:
        logger.debug("first checkpoint seen: %s@%d", checkpoint.origin, checkpoint.size)
        return checkpoint
    return _check_against_newest(checkpoint, bundle.consistency, newest_seen)


def _check_against_newest(
    checkpoint: Checkpoint, consistency: ConsistencyProof | None, newest_seen: Checkpoint
) -> Checkpoint:
    if checkpoint.size == newest_seen.size:
        check_consistent(newest_seen, checkpoint, ())
        return newest_seen
    old, new = sorted((newest_seen, checkpoint), key=lambda c: c.size)
    if consistency is None or (consistency.old_size, consistency.new_size) != (old.size, new.size):
        actual = "none" if consistency is None else f"{consistency.old_size} -> {consistency.new_size}"
        raise Rejected(
            Reason.INCONSISTENT_LOG,
            "the bundle has no consistency proof between its checkpoint and the newest one seen",
            expected=f"{old.size} -> {new.size}",
            actual=actual,
        )
    check_consistent(old, new, consistency.proof)
    logger.debug("checkpoint %s@%d is consistent with size %d", new.origin, new.size, old.size)
    return new

