"""The double-signing chapter of ``flexheg demo``: a treaty whose approvals must be logged.

The agreement names a transparency log and three witnesses (quorum 2) and, to show the attack,
lets any one bloc extend an update. All blocs approve ruleset v1 and then the stricter v2 through
their ledgers, and both are logged. ``bloc-c`` keeps its own data center on v1 and tries to extend
v1 in secret: its ledger rejects that, so it signs outside the ledger, reusing a serial. Its
devices reject the extension while it is not in the log; once ``bloc-c`` logs it, a monitor of the
public log finds the double signing and writes a proof that anyone can check with public keys.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

from flexheg.authority import sign_approval
from flexheg.authority.ledger import ApproverSigner
from flexheg.device import Agreement, AgreementKind, Device, LifetimeExtension, LogConfig
from flexheg.errors import Rejected
from flexheg.policy import Action, Approver, ApproverKey, Policy
from flexheg.rules import Ruleset, RulesetUpdate
from flexheg.translog.equivocation import proof_to_json, scan_entries, verify_equivocation
from flexheg.translog.log import TransparencyLog
from flexheg.translog.storage import SQLiteLogStorage, SQLiteWitnessStorage
from flexheg.translog.witness import Witness, collect_cosignatures
from flexheg.wire import Envelope, PublicKey, SigningKey, parse_statement, sha256_digest
from flexheg.wire.checkpoint import Checkpoint, NoteSigner

LOG_ORIGIN = "log.flexheg.example/treaty"
WITNESS_NAMES = tuple(f"witness.flexheg.example/w{index}" for index in (1, 2, 3))
DAY = 86400

Check = Callable[[str, str, str], None]


class LoggedTreaty:
    """A log, its witnesses, the blocs' ledgers and bloc-c's devices under a logged agreement."""

    def __init__(
        self,
        folder: Path,
        *,
        keys: dict[str, SigningKey],
        blocs: Sequence[str],
        manufacturer: SigningKey,
        baseline: Ruleset | None,
        host_clock: Callable[[], float],
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.keys = keys
        self.blocs = tuple(blocs)
        self.host_clock = host_clock
        self.log_signer = NoteSigner.generate(LOG_ORIGIN)
        self.log = TransparencyLog(SQLiteLogStorage(folder / "log.sqlite"), self.log_signer)
        witness_signers = [NoteSigner.generate(name) for name in WITNESS_NAMES]
        self.witnesses = [
            Witness(
                SQLiteWitnessStorage(folder / f"witness-{index}.sqlite"),
                signer,
                {LOG_ORIGIN: self.log_signer.verifier()},
            )
            for index, signer in enumerate(witness_signers, start=1)
        ]
        agreement = Agreement(
            name="flexheg demo treaty with a transparency log",
            kind=AgreementKind.RULESET,
            approvers=tuple(Approver(b, 1, (ApproverKey(keys[b].public),)) for b in self.blocs),
            policies={
                Action.INSTALL: Policy("all"),
                # Any one bloc may extend, so that the secret extension below needs no accomplice.
                Action.EXTEND: Policy("weighted", 1),
                Action.CHANGE_APPROVERS: Policy("all"),
            },
            manufacturers=(manufacturer.public,),
            baseline=baseline,
            max_lifetime=90 * DAY,
            max_extension=60 * DAY,
            log=LogConfig(
                origin=LOG_ORIGIN,
                key=self.log_signer.verifier().to_vkey(),
                witnesses=tuple(s.cosignature_verifier().to_vkey() for s in witness_signers),
                quorum=2,
            ),
        )
        self.agreement_payload = agreement.encode()
        self.agreement_digest = sha256_digest(self.agreement_payload)
        (folder / "agreement.json").write_bytes(self.agreement_payload)
        (folder / "ledgers").mkdir(exist_ok=True)
        self.ledgers = {
            bloc: ApproverSigner.open(folder / "ledgers" / f"{bloc}.ledger", keys[bloc], bloc)
            for bloc in self.blocs
        }
        self.devices = {
            device_id: Device.provision(
                folder / "devices" / device_id,
                agreement_payload=self.agreement_payload,
                manufacturer_key=manufacturer,
                device_id=device_id,
                host_clock=host_clock,
            )
            for device_id in ("dc-south-01", "dc-south-02")
        }

    def now(self) -> int:
        return int(self.host_clock())

    def close(self) -> None:
        for ledger in self.ledgers.values():
            ledger.close()
        self.log.close()

    def publish(self, entries: Sequence[bytes]) -> Checkpoint:
        """Append entries, sign a checkpoint and have the witnesses cosign it."""
        self.log.append(entries)
        checkpoint = self.log.sign_checkpoint()
        cosignatures, _ = collect_cosignatures(
            checkpoint, self.witnesses, consistency_proof=self.log.consistency_proof, now=self.now()
        )
        return self.log.add_cosignatures(checkpoint.size, cosignatures)

    def bundle_for(self, device: Device, entries: Sequence[bytes]) -> bytes:
        state = device.state()
        newest = None if state is None or state.checkpoint is None else Checkpoint.parse(state.checkpoint)
        return self.log.bundle(entries, newest_seen_size=None if newest is None else newest.size).to_json()

    def approve_all(self, action: Action, subject: bytes, version: int) -> list[Envelope]:
        return [
            ledger.approve(
                agreement=self.agreement_digest,
                action=action,
                subject=sha256_digest(subject),
                version=version,
                now=self.now(),
            )
            for ledger in self.ledgers.values()
        ]

    def update(self, version: int, ruleset: Ruleset) -> bytes:
        payload = RulesetUpdate(self.agreement_digest, version, self.now(), 90 * DAY, ruleset).encode()
        (self.folder / f"v{version}.json").write_bytes(payload)
        return payload


def outcome(action: Callable[[], object]) -> str:
    try:
        action()
    except Rejected as exc:
        return f"rejected: {exc.reason.value}"
    return "accepted"


def run_double_signing(treaty: LoggedTreaty, rulesets: Sequence[Ruleset], check: Check) -> None:
    """Play the chapter and record its checks."""
    v1 = treaty.update(1, rulesets[0])
    v1_approvals = treaty.approve_all(Action.INSTALL, v1, 1)
    entries = [v1, *(a.to_json() for a in v1_approvals)]
    device = treaty.devices["dc-south-01"]
    check(
        "with a log in the agreement, an update without a log proof is rejected",
        "rejected: not-logged",
        outcome(lambda: device.install(v1, v1_approvals)),
    )
    treaty.publish(entries)
    installs = {
        outcome(
            functools.partial(each.install, v1, v1_approvals, log_bundle=treaty.bundle_for(each, entries))
        )
        for each in treaty.devices.values()
    }
    check(
        "an update logged under a checkpoint cosigned by 2 of 3 witnesses installs",
        "accepted",
        ",".join(sorted(installs)),
    )

    v2 = treaty.update(2, rulesets[1])
    v2_approvals = treaty.approve_all(Action.INSTALL, v2, 2)
    treaty.publish([v2, *(a.to_json() for a in v2_approvals)])

    cheater = "bloc-c"
    v1_not_after = parse_statement(v1, RulesetUpdate, what="v1").not_after
    extension = LifetimeExtension(
        treaty.agreement_digest, sha256_digest(v1), 1, 1, v1_not_after + 30 * DAY
    ).encode()
    (treaty.folder / "secret-extension.json").write_bytes(extension)
    check(
        "bloc-c's own ledger rejects extending v1 after it approved v2",
        "rejected: rollback",
        outcome(
            lambda: treaty.ledgers[cheater].approve(
                agreement=treaty.agreement_digest,
                action=Action.EXTEND,
                subject=sha256_digest(extension),
                version=1,
                now=treaty.now(),
            )
        ),
    )
    reused_serial = treaty.ledgers[cheater].records()[-1].serial
    secret = sign_approval(
        treaty.keys[cheater],
        approver=cheater,
        agreement=treaty.agreement_digest,
        action=Action.EXTEND,
        subject=sha256_digest(extension),
        serial=reused_serial,
        now=treaty.now(),
    )
    check(
        "bloc-c's devices reject its secret extension of v1 while it is not in the log",
        "rejected: not-logged",
        outcome(lambda: device.extend(extension, [secret])),
    )

    secret_entries = [extension, secret.to_json()]
    treaty.publish(secret_entries)
    check(
        "once bloc-c logs the extension its devices accept it, in public",
        "accepted",
        outcome(
            lambda: device.extend(extension, [secret], log_bundle=treaty.bundle_for(device, secret_entries))
        ),
    )

    keys: dict[str, PublicKey] = {bloc: treaty.keys[bloc].public for bloc in treaty.blocs}
    logged = [treaty.log.entry(index) for index in range(treaty.log.size())]
    proofs = scan_entries(logged, keys)
    observed = "no equivocation found"
    if proofs:
        proof_path = treaty.folder / "equivocation-proof.json"
        proof_path.write_bytes(proof_to_json(proofs[0]))
        finding = verify_equivocation(proof_path.read_bytes())
        observed = f"{finding.kind} by {finding.party}"
    check(
        "a log monitor proves bloc-c's double signing with public keys alone",
        f"serial-reuse by {cheater}",
        observed,
    )
