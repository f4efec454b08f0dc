"""Self-contained proofs of misbehaviour by an approver or a log operator, and their check.

Three kinds, each checkable with public keys only:

``serial-reuse``
    Two approvals, both validly signed by one approver key, that name the same approver and the
    same serial but differ in agreement, action or subject. An honest approver's ledger assigns
    each serial once, so this proves double signing.
``stale-extension``
    An approval of a ruleset version ``v`` (install or extend) and a later approval, by the
    approver's own serial order, that extends a version below ``v`` in the same agreement. The
    proof carries the two subject statements' canonical bytes; their SHA-256 digests must be the
    approvals' subjects, and their ``version`` fields give the versions.
``log-fork``
    Two checkpoints signed by one log that no append-only log can produce: the same size with
    different roots, or a consistency proof from a prefix root of the larger tree, different from
    the smaller checkpoint's root, to the larger tree's root.

The proof file is canonical JSON with ``type`` ``flexheg.dev/equivocation-proof/v1`` and ``kind``
naming one of the above (field list in ``docs/translog.md``). :func:`verify_equivocation` returns
a :class:`Finding` when the file proves misbehaviour and raises :class:`Rejected` otherwise.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flexheg.errors import InputError, Reason, Rejected
from flexheg.policy import Action, Approval
from flexheg.wire import (
    Envelope,
    Fields,
    PublicKey,
    decode,
    encode,
    loads_strict,
    sha256_digest,
)
from flexheg.wire.checkpoint import Checkpoint, NoteVerifier, verify_checkpoint
from flexheg.wire.merkle import HASH_SIZE, verify_consistency

logger = logging.getLogger(__name__)

PROOF_TYPE = "flexheg.dev/equivocation-proof/v1"


def _not_proven(message: str, *, expected: str = "", actual: str = "") -> Rejected:
    return Rejected(
        Reason.MALFORMED, f"no misbehaviour proven: {message}", expected=expected, actual=actual
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InputError(f"{what}: not valid base64") from None


@dataclass(frozen=True)
class Finding:
    """Result of a valid proof: the kind, the party that misbehaved, its key id and a sentence."""

    kind: str
    party: str
    key_id: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "party": self.party,
            "key_id": self.key_id,
            "message": self.message,
            "details": self.details,
        }


def _verified_approval(envelope: Envelope, key: PublicKey, what: str) -> Approval:
    try:
        approval = envelope.statement(Approval, what=what)
    except InputError as exc:
        raise _not_proven(str(exc)) from None
    if not envelope.verified_by({key.keyid: key}):
        raise Rejected(
            Reason.BAD_SIGNATURE,
            f"{what} is not validly signed by key {key.keyid}",
            expected=f"a signature by {key.keyid}",
            actual=", ".join(s.keyid for s in envelope.signatures) or "no signatures",
        )
    return approval


@dataclass(frozen=True)
class SerialReuseProof:
    """Two approvals by one approver under one serial with different content."""

    KIND = "serial-reuse"

    approver_key: PublicKey
    first: Envelope
    second: Envelope

    def verify(self) -> Finding:
        first = _verified_approval(self.first, self.approver_key, "first approval")
        second = _verified_approval(self.second, self.approver_key, "second approval")
        if first.approver != second.approver:
            raise _not_proven(
                "the approvals name different approvers",
                expected=first.approver, actual=second.approver,
            )
        if first.serial != second.serial:
            raise _not_proven(
                "the approvals have different serials",
                expected=str(first.serial), actual=str(second.serial),
            )
        if first.agreement != second.agreement:
            # Serials are counted per agreement, so one serial in two agreements is no conflict.
            raise _not_proven(
                "the approvals belong to different agreements",
                expected=first.agreement, actual=second.agreement,
            )
        if (first.agreement, first.action, first.subject) == (
            second.agreement, second.action, second.subject
        ):
            raise _not_proven("both approvals approve the same action on the same subject")
        return Finding(
            self.KIND,
            first.approver,
            self.approver_key.keyid,
            f"approver {first.approver} signed two different approvals under serial "
            f"{first.serial}",
            {
                "serial": first.serial,
                "first": {"action": first.action.value, "subject": first.subject,
                          "agreement": first.agreement},
                "second": {"action": second.action.value, "subject": second.subject,
                           "agreement": second.agreement},
            },
        )

    def body(self) -> dict[str, Any]:
        return {
            "approver_key": self.approver_key.to_dict(),
            "approvals": [self.first.to_dict(), self.second.to_dict()],
        }


def subject_version(subject: bytes, *, what: str) -> int:
    """Read the integer ``version`` field of a canonical JSON subject statement."""
    value = decode(subject, what=what)
    if not isinstance(value, dict):
        raise InputError(f"{what}: expected a JSON object")
    version = value.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InputError(f"{what}: has no non-negative integer 'version' field")
    return version


@dataclass(frozen=True)
class StaleExtensionProof:
    """An approval of version v, then (by serial) an extension of a version below v."""

    KIND = "stale-extension"

    approver_key: PublicKey
    newer: Envelope
    newer_subject: bytes
    stale: Envelope
    stale_subject: bytes

    def verify(self) -> Finding:
        newer = _verified_approval(self.newer, self.approver_key, "approval of the newer version")
        stale = _verified_approval(self.stale, self.approver_key, "extension approval")
        if newer.approver != stale.approver:
            raise _not_proven("the approvals name different approvers",
                              expected=newer.approver, actual=stale.approver)
        if newer.agreement != stale.agreement:
            raise _not_proven("the approvals are for different agreements",
                              expected=newer.agreement, actual=stale.agreement)
        for approval, subject, what in (
            (newer, self.newer_subject, "newer subject"),
            (stale, self.stale_subject, "extension subject"),
        ):
            if sha256_digest(subject) != approval.subject:
                raise Rejected(
                    Reason.DIGEST_MISMATCH,
                    f"the {what} statement is not the one the approval names",
                    expected=approval.subject,
                    actual=sha256_digest(subject),
                )
        try:
            newer_version = subject_version(self.newer_subject, what="newer subject")
            stale_version = subject_version(self.stale_subject, what="extension subject")
        except InputError as exc:
            raise _not_proven(str(exc)) from None
        if newer.action not in (Action.INSTALL, Action.EXTEND) or stale.action != Action.EXTEND:
            raise _not_proven(
                "the first approval must install or extend and the second must extend",
                expected="install|extend, extend",
                actual=f"{newer.action.value}, {stale.action.value}",
            )
        if not newer.serial < stale.serial:
            raise _not_proven(
                "the extension was not signed after the newer approval (by serial)",
                expected=f"serial > {newer.serial}", actual=str(stale.serial),
            )
        if not stale_version < newer_version:
            raise _not_proven(
                "the extended version is not older than the approved one",
                expected=f"version < {newer_version}", actual=str(stale_version),
            )
        return Finding(
            self.KIND,
            newer.approver,
            self.approver_key.keyid,
            f"approver {newer.approver} approved version {newer_version} (serial {newer.serial}) "
            f"and later extended version {stale_version} (serial {stale.serial})",
            {"newer_version": newer_version, "newer_serial": newer.serial,
             "stale_version": stale_version, "stale_serial": stale.serial,
             "agreement": newer.agreement},
        )

    def body(self) -> dict[str, Any]:
        return {
            "approver_key": self.approver_key.to_dict(),
            "approvals": [self.newer.to_dict(), self.stale.to_dict()],
            "subjects": [_b64(self.newer_subject), _b64(self.stale_subject)],
        }


@dataclass(frozen=True)
class LogForkProof:
    """Two checkpoints of one log that no append-only log can have signed."""

    KIND = "log-fork"

    log_key: NoteVerifier
    first: Checkpoint
    second: Checkpoint
    prefix_root: bytes | None
    proof: tuple[bytes, ...]

    def verify(self) -> Finding:
        for checkpoint in (self.first, self.second):
            try:
                verify_checkpoint(checkpoint, self.log_key)
            except Rejected as exc:
                raise Rejected(Reason.BAD_SIGNATURE, exc.message, expected=exc.expected,
                               actual=exc.actual) from None
        smaller, larger = sorted((self.first, self.second), key=lambda c: c.size)
        details = {"sizes": [smaller.size, larger.size],
                   "roots": [smaller.root_hash.hex(), larger.root_hash.hex()]}
        if smaller.size == larger.size:
            if smaller.root_hash == larger.root_hash:
                raise _not_proven("the two checkpoints are the same tree")
            return Finding(self.KIND, self.log_key.name, self.log_key.key_id.hex(),
                           f"log {self.log_key.name} signed two different trees of size "
                           f"{smaller.size}", details)
        if self.prefix_root is None or len(self.prefix_root) != HASH_SIZE:
            raise _not_proven("checkpoints of different sizes need a 32-byte prefix root")
        if self.prefix_root == smaller.root_hash:
            raise _not_proven("the prefix root equals the smaller checkpoint's root")
        try:
            verify_consistency(old_size=smaller.size, new_size=larger.size,
                               old_root=self.prefix_root, new_root=larger.root_hash,
                               proof=self.proof)
        except Rejected as exc:
            raise _not_proven(f"the prefix proof does not verify: {exc.message}") from None
        details["prefix_root"] = self.prefix_root.hex()
        return Finding(
            self.KIND, self.log_key.name, self.log_key.key_id.hex(),
            f"log {self.log_key.name} signed a tree of size {larger.size} whose first "
            f"{smaller.size} entries differ from its signed tree of size {smaller.size}",
            details,
        )

    def body(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "log_key": self.log_key.to_vkey(),
            "checkpoints": [c.to_bytes().decode("utf-8") for c in (self.first, self.second)],
            "proof": [_b64(h) for h in self.proof],
        }
        if self.prefix_root is not None:
            result["prefix_root"] = _b64(self.prefix_root)
        return result


EquivocationProof = SerialReuseProof | StaleExtensionProof | LogForkProof


def proof_to_json(proof: EquivocationProof) -> bytes:
    """Encode a proof as canonical JSON bytes."""
    return encode({"type": PROOF_TYPE, "kind": proof.KIND, **proof.body()})


def _envelopes(fields: Fields, count: int) -> list[Envelope]:
    items = fields.list("approvals")
    if len(items) != count:
        raise InputError(f"{fields.path('approvals')}: expected {count} approvals, got {len(items)}")
    return [Envelope.from_dict(item, what=f"{fields.path('approvals')}[{i}]")
            for i, item in enumerate(items)]


def parse_proof(data: bytes, *, what: str = "equivocation proof") -> EquivocationProof:
    """Parse a proof file strictly (unknown fields and kinds are errors)."""
    fields = Fields(loads_strict(data, what=what), what)
    if fields.str("type") != PROOF_TYPE:
        raise InputError(f"{what}: type is not {PROOF_TYPE!r}")
    kind = fields.str("kind")
    proof: EquivocationProof
    if kind in (SerialReuseProof.KIND, StaleExtensionProof.KIND):
        key = PublicKey.from_dict(fields.raw("approver_key"), where=fields.path("approver_key"))
        envelopes = _envelopes(fields, 2)
        if kind == SerialReuseProof.KIND:
            proof = SerialReuseProof(key, envelopes[0], envelopes[1])
        else:
            subjects = fields.str_list("subjects")
            if len(subjects) != 2:
                raise InputError(f"{fields.path('subjects')}: expected 2 subject statements")
            newer, stale = (_unb64(s, fields.path("subjects")) for s in subjects)
            proof = StaleExtensionProof(key, envelopes[0], newer, envelopes[1], stale)
    elif kind == LogForkProof.KIND:
        log_key = NoteVerifier.from_vkey(fields.str("log_key"), what=fields.path("log_key"))
        notes = fields.str_list("checkpoints")
        if len(notes) != 2:
            raise InputError(f"{fields.path('checkpoints')}: expected 2 checkpoints")
        first, second = (Checkpoint.parse(n, what=fields.path("checkpoints")) for n in notes)
        prefix = fields.optional_str("prefix_root")
        hashes = tuple(_unb64(h, fields.path("proof")) for h in fields.str_list("proof"))
        prefix_root = None if prefix is None else _unb64(prefix, fields.path("prefix_root"))
        proof = LogForkProof(log_key, first, second, prefix_root, hashes)
    else:
        raise InputError(
            f"{what}: unknown kind {kind!r}; expected serial-reuse, stale-extension or log-fork"
        )
    fields.done()
    return proof


def verify_equivocation(proof: EquivocationProof | bytes) -> Finding:
    """Check a proof; return the finding, or raise Rejected when it proves nothing.

    Raises:
        InputError: the proof bytes cannot be parsed.
        Rejected: the proof is well-formed but does not prove misbehaviour.
    """
    if isinstance(proof, bytes):
        proof = parse_proof(proof)
    finding = proof.verify()
    logger.debug("equivocation proven: %s by %s", finding.kind, finding.party)
    return finding


# Monitoring a log of approvals.


@dataclass(frozen=True)
class _LoggedApproval:
    envelope: Envelope
    approval: Approval


def scan_entries(
    entries: Iterable[bytes], approver_keys: Mapping[str, PublicKey]
) -> list[EquivocationProof]:
    """Find every serial reuse and stale extension among logged approvals.

    ``entries`` are log entries: approval envelopes (JSON) and the canonical subject statements
    they approve; other entries are skipped. ``approver_keys`` maps approver ids to their keys;
    approvals by other keys are skipped, because they prove nothing about an approver.
    """
    approvals: dict[str, list[_LoggedApproval]] = defaultdict(list)
    subjects: dict[str, bytes] = {}
    for entry in entries:
        subjects[sha256_digest(entry)] = entry
        logged = _parse_logged_approval(entry, approver_keys)
        if logged is not None:
            approvals[logged.approval.approver].append(logged)

    proofs: list[EquivocationProof] = []
    for approver_id, items in sorted(approvals.items()):
        key = approver_keys[approver_id]
        proofs.extend(_serial_reuses(key, items))
        proofs.extend(_stale_extensions(key, items, subjects))
    return proofs


def _parse_logged_approval(
    entry: bytes, approver_keys: Mapping[str, PublicKey]
) -> _LoggedApproval | None:
    try:
        envelope = Envelope.from_json(entry, what="log entry")
        approval = envelope.statement(Approval, what="log entry")
    except InputError:
        return None
    key = approver_keys.get(approval.approver)
    if key is None or not envelope.verified_by({key.keyid: key}):
        return None
    return _LoggedApproval(envelope, approval)


def _serial_reuses(key: PublicKey, items: list[_LoggedApproval]) -> list[EquivocationProof]:
    by_serial: dict[int, _LoggedApproval] = {}
    proofs: list[EquivocationProof] = []
    for item in items:
        first = by_serial.setdefault(item.approval.serial, item)
        a, b = first.approval, item.approval
        if (a.agreement, a.action, a.subject) != (b.agreement, b.action, b.subject):
            proofs.append(SerialReuseProof(key, first.envelope, item.envelope))
    return proofs


def _stale_extensions(
    key: PublicKey, items: list[_LoggedApproval], subjects: Mapping[str, bytes]
) -> list[EquivocationProof]:
    versioned: list[tuple[_LoggedApproval, bytes, int]] = []
    for item in items:
        subject = subjects.get(item.approval.subject)
        if subject is None or item.approval.action == Action.CHANGE_APPROVERS:
            continue
        try:
            version = subject_version(subject, what="logged subject")
        except InputError:
            continue
        versioned.append((item, subject, version))
    versioned.sort(key=lambda row: row[0].approval.serial)

    proofs: list[EquivocationProof] = []
    newest: dict[str, tuple[_LoggedApproval, bytes, int]] = {}
    for item, subject, version in versioned:
        agreement = item.approval.agreement
        best = newest.get(agreement)
        if (
            best is not None
            and item.approval.action == Action.EXTEND
            and version < best[2]
            and best[0].approval.serial < item.approval.serial
        ):
            proofs.append(StaleExtensionProof(key, best[0].envelope, best[1], item.envelope, subject))
        if best is None or version > best[2]:
            newest[agreement] = (item, subject, version)
    return proofs
