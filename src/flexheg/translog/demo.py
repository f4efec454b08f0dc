"""The double-signing story, end to end, for ``flexheg demo`` and for tests.

Three approvers approve ruleset version 1 and then the stricter version 2; every approval and
subject statement goes into a witnessed log and a device accepts them only with a proof bundle.
Approver ``bloc-c`` then tries to extend version 1 in secret. Its own ledger rejects the request
(``rollback``), so it signs outside the ledger, reusing the serial of its version 2 approval. A
device rejects the secret approval while it is not in the log (``not-logged``); once ``bloc-c``
logs it to get it accepted, a log monitor finds both approvals under one serial and writes a proof
that anyone can check with the public keys alone.

Call :func:`run_double_signing_story`. It reads no clock: pass the time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from flexheg.authority._approver import sign_approval
from flexheg.authority.ledger import ApproverSigner
from flexheg.errors import Rejected
from flexheg.policy import Action
from flexheg.translog.equivocation import Finding, proof_to_json, scan_entries, verify_equivocation
from flexheg.translog.log import TransparencyLog
from flexheg.translog.storage import SQLiteLogStorage, SQLiteWitnessStorage
from flexheg.translog.witness import Witness, collect_cosignatures
from flexheg.wire import PublicKey, SigningKey, encode, sha256_digest
from flexheg.wire.checkpoint import Checkpoint, NoteSigner, verify_log_bundle

logger = logging.getLogger(__name__)

LOG_NAME = "log.flexheg.example/approvals"
WITNESS_NAMES = ("witness.flexheg.example/w1", "witness.flexheg.example/w2",
                 "witness.flexheg.example/w3")
APPROVERS = ("bloc-a", "bloc-b", "bloc-c")
WITNESS_QUORUM = 2


def demo_subject(kind: str, version: int, note: str) -> bytes:
    """Return canonical JSON bytes of a stand-in subject statement with a ``version`` field."""
    return encode({"type": f"flexheg.dev/demo-{kind}/v1", "version": version, "note": note})


@dataclass
class StoryReport:
    """Steps of the story in order, with the proof file and the finding it proves."""

    steps: list[str] = field(default_factory=list)
    proof_path: Path | None = None
    finding: Finding | None = None
    device_checkpoint: Checkpoint | None = None

    def say(self, text: str) -> None:
        logger.info("%s", text)
        self.steps.append(text)


class _Story:
    def __init__(self, workdir: Path, now: int, agreement: str) -> None:
        self.now = now
        self.agreement = agreement
        self.keys = {name: SigningKey.generate() for name in APPROVERS}
        self.ledgers = {
            name: ApproverSigner.open(workdir / f"{name}.ledger.sqlite", key, name)
            for name, key in self.keys.items()
        }
        self.log_signer = NoteSigner.generate(LOG_NAME)
        self.log = TransparencyLog(SQLiteLogStorage(workdir / "log.sqlite"), self.log_signer)
        self.witness_signers = [NoteSigner.generate(name) for name in WITNESS_NAMES]
        logs = {LOG_NAME: self.log_signer.verifier()}
        self.witnesses = [
            Witness(SQLiteWitnessStorage(workdir / f"witness-{i}.sqlite"), signer, logs)
            for i, signer in enumerate(self.witness_signers)
        ]
        self.device_newest: Checkpoint | None = None

    def close(self) -> None:
        for ledger in self.ledgers.values():
            ledger.close()
        self.log.close()

    def publish(self, entries: list[bytes]) -> Checkpoint:
        self.log.append(entries)
        checkpoint = self.log.sign_checkpoint()
        cosignatures, _failures = collect_cosignatures(
            checkpoint, self.witnesses, consistency_proof=self.log.consistency_proof, now=self.now
        )
        return self.log.add_cosignatures(checkpoint.size, cosignatures)

    def device_accepts(self, entries: list[bytes]) -> Checkpoint:
        newest_size = None if self.device_newest is None else self.device_newest.size
        bundle = self.log.bundle(entries, newest_seen_size=newest_size)
        self.device_newest = verify_log_bundle(
            bundle.to_json(), entries=entries, log_key=self.log_signer.verifier(),
            witnesses=[s.cosignature_verifier() for s in self.witness_signers],
            quorum=WITNESS_QUORUM, newest_seen=self.device_newest,
        )
        return self.device_newest

    def approve_all(self, action: Action, subject: bytes, version: int) -> list[bytes]:
        return [
            ledger.approve(agreement=self.agreement, action=action,
                           subject=sha256_digest(subject), version=version,
                           now=self.now).to_json()
            for ledger in self.ledgers.values()
        ]


def run_double_signing_story(
    workdir: Path, *, now: int, agreement: str | None = None
) -> StoryReport:
    """Run the story in ``workdir`` (created if missing) at time ``now``; return the report."""
    workdir.mkdir(parents=True, exist_ok=True)
    agreement = agreement or sha256_digest(b"flexheg demo agreement")
    story = _Story(workdir, now, agreement)
    report = StoryReport()
    try:
        _honest_updates(story, report)
        _secret_extension(story, report, workdir)
    finally:
        story.close()
    return report


def _honest_updates(story: _Story, report: StoryReport) -> None:
    for version, note in ((1, "baseline compute cap"), (2, "stricter compute cap")):
        update = demo_subject("ruleset-update", version, note)
        approvals = story.approve_all(Action.INSTALL, update, version)
        checkpoint = story.publish([update, *approvals])
        story.device_accepts(approvals)
        report.say(
            f"all approvers approved version {version}; logged at size {checkpoint.size} and "
            f"cosigned by {WITNESS_QUORUM}+ witnesses; the device accepted it"
        )
    report.device_checkpoint = story.device_newest


def _secret_extension(story: _Story, report: StoryReport, workdir: Path) -> None:
    cheater = "bloc-c"
    extension = demo_subject("lifetime-extension", 1, "secret extension of version 1")
    try:
        story.ledgers[cheater].approve(
            agreement=story.agreement, action=Action.EXTEND, subject=sha256_digest(extension),
            version=1, now=story.now,
        )
    except Rejected as exc:
        report.say(f"{cheater}'s own ledger rejected the secret extension: {exc.reason.value}")

    reused_serial = story.ledgers[cheater].records()[-1].serial
    secret = sign_approval(
        story.keys[cheater], approver=cheater, agreement=story.agreement, action=Action.EXTEND,
        subject=sha256_digest(extension), serial=reused_serial, now=story.now,
    ).to_json()
    report.say(f"{cheater} signed the extension outside its ledger, reusing serial {reused_serial}")

    honest = [story.log.entry(i) for i in range(story.log.size())][-1:]
    bundle = story.log.bundle(honest, newest_seen_size=None)
    try:
        verify_log_bundle(
            bundle.to_json(), entries=[secret], log_key=story.log_signer.verifier(),
            witnesses=[s.cosignature_verifier() for s in story.witness_signers],
            quorum=WITNESS_QUORUM, newest_seen=story.device_newest,
        )
    except Rejected as exc:
        report.say(f"a device rejected the unlogged secret approval: {exc.reason.value}")

    story.publish([extension, secret])
    story.device_accepts([secret])
    report.say("once logged, a device would accept it, and the log is public")

    keys: dict[str, PublicKey] = {name: key.public for name, key in story.keys.items()}
    entries = [story.log.entry(i) for i in range(story.log.size())]
    proofs = scan_entries(entries, keys)
    if not proofs:
        report.say("the monitor found no equivocation")
        return
    proof_bytes = proof_to_json(proofs[0])
    report.proof_path = workdir / "equivocation-proof.json"
    report.proof_path.write_bytes(proof_bytes)
    report.finding = verify_equivocation(proof_bytes)
    report.say(f"the log monitor proved it: {report.finding.message}")


__all__ = ["StoryReport", "demo_subject", "run_double_signing_story"]
