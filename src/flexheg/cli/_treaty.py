"""The treaty scenario behind ``flexheg demo``.

Three approver blocs, a manufacturer, two data centers and eight devices, all with real keys,
real signed files and real device folders. Every step records a :class:`Check` (guarantee,
expected outcome, observed outcome); the scenario passes only when every observed outcome is the
expected one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexheg.attest import EvidenceBundle, appraise
from flexheg.authority import sign_approval
from flexheg.cli._located_treaty import run_location_chapter
from flexheg.cli._logged_treaty import LoggedTreaty, run_double_signing
from flexheg.device import Agreement, AgreementKind, Device, DeviceCertificate, LifetimeExtension
from flexheg.errors import Rejected
from flexheg.policy import Action, Approver, ApproverKey, Policy
from flexheg.rules import RulesetUpdate, load_rules_file
from flexheg.wire import Envelope, PublicKey, SigningKey, parse_statement, sha256_digest, write_key_pair

DAY = 86400
BLOCS = ("bloc-a", "bloc-b", "bloc-c")
DATA_CENTERS = {"dc-east": "bloc-a", "dc-west": "bloc-b"}
DEVICES_PER_DATA_CENTER = 4

BASELINE_RULES = """\
# Baseline ruleset: the rights no update can take away, and the fallback on expiry.
[[rule]]
id = "small-clusters"
effect = "allow"
when = "workload.cluster_size <= 64 && workload.interconnect_gbps <= 100 && run.flop_total <= 1e22"
reason = "small clusters with limited bandwidth may run anything"
"""

RULES_V1 = """\
[caps]
training_flop = "1e25"

[[rule]]
id = "training-cap"
effect = "deny"
when = 'workload.kind in ["training", "fine-tuning"] && run.flop_total > caps.training_flop'
reason = "training runs are capped at 1e25 FLOP"

[[rule]]
id = "declared-work"
effect = "allow"
when = "workload.cluster_size <= 100000"
reason = "declared workloads on up to 100000 accelerators may run"

[[succession]]
kind = "max-lifetime"
seconds = 7776000
"""

RULES_V2 = RULES_V1.replace('"1e25"', '"5e24"').replace("1e25 FLOP", "5e24 FLOP")


@dataclass
class Check:
    guarantee: str
    expected: str
    observed: str

    @property
    def met(self) -> bool:
        return self.expected == self.observed

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "met": self.met}


@dataclass
class Report:
    folder: Path
    checks: list[Check] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.met for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "folder": str(self.folder),
            "seconds": round(time.monotonic() - self.started, 2),
            "checks": [c.to_dict() for c in self.checks],
            "met": sum(c.met for c in self.checks),
            "total": len(self.checks),
        }


def outcome(action: Callable[[], object]) -> str:
    """Run ``action`` and describe its outcome as ``accepted`` or ``rejected: <reason>``."""
    try:
        action()
    except Rejected as exc:
        return f"rejected: {exc.reason.value}"
    return "accepted"


class Treaty:
    """The parties, their keys and files, and the devices of the scenario."""

    def __init__(self, folder: Path, progress: Callable[[str], None]) -> None:
        self.folder = folder
        self.progress = progress
        self.report = Report(folder)
        self.world_offset = 0
        self.keys: dict[str, SigningKey] = {}
        self.devices: dict[str, Device] = {}
        self.serials: dict[str, int] = dict.fromkeys(BLOCS, 0)
        self.identity_keys: dict[str, PublicKey] = {}

    # Setup.

    def _key(self, name: str) -> SigningKey:
        key = SigningKey.generate()
        write_key_pair(key, self.folder / "keys" / name)
        self.keys[name] = key
        return key

    def now(self) -> int:
        return int(time.time()) + self.world_offset

    def setup(self) -> None:
        self.progress("generating keys for 3 approver blocs and the manufacturer")
        for name in (*BLOCS, "manufacturer", "forger"):
            self._key(name)
        baseline_path = self.folder / "rules" / "baseline.toml"
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        baseline_path.write_text(BASELINE_RULES, encoding="utf-8")
        for version, text in ((1, RULES_V1), (2, RULES_V2)):
            (self.folder / "rules" / f"v{version}.toml").write_text(text, encoding="utf-8")
        agreement = Agreement(
            name="flexheg demo treaty",
            kind=AgreementKind.RULESET,
            approvers=tuple(Approver(b, 1, (ApproverKey(self.keys[b].public),)) for b in BLOCS),
            policies={
                Action.INSTALL: Policy("all"),
                Action.EXTEND: Policy("majority"),
                Action.CHANGE_APPROVERS: Policy("all"),
            },
            manufacturers=(self.keys["manufacturer"].public,),
            baseline=load_rules_file(baseline_path),
            max_lifetime=90 * DAY,
            max_extension=60 * DAY,
        )
        self.agreement_payload = agreement.encode()
        self.agreement_digest = sha256_digest(self.agreement_payload)
        (self.folder / "agreement.json").write_bytes(self.agreement_payload)

        self.progress("assembling 8 devices in 2 data centers")
        for data_center in DATA_CENTERS:
            for index in range(1, DEVICES_PER_DATA_CENTER + 1):
                device_id = f"{data_center}-{index:02d}"
                self.devices[device_id] = Device.provision(
                    self.folder / "devices" / device_id,
                    agreement_payload=self.agreement_payload,
                    manufacturer_key=self.keys["manufacturer"],
                    device_id=device_id,
                    host_clock=self._host_clock,
                )
                certificate = self.devices[device_id].certificate()
                self.identity_keys[device_id] = certificate.statement(
                    DeviceCertificate, what="certificate"
                ).identity_key

    def _host_clock(self) -> float:
        return time.time() + self.world_offset

    # Building and approving statements.

    def build_update(self, version: int, rules: str, lifetime: int) -> bytes:
        path = self.folder / "rules" / f"v{version}.toml"
        path.write_text(rules, encoding="utf-8")
        update = RulesetUpdate(self.agreement_digest, version, self.now(), lifetime, load_rules_file(path))
        payload = update.encode()
        (self.folder / "updates" / f"v{version}.json").parent.mkdir(exist_ok=True)
        (self.folder / "updates" / f"v{version}.json").write_bytes(payload)
        return payload

    def approve(
        self, payload: bytes, action: Action, blocs: Sequence[str], *, key: str | None = None
    ) -> list[Envelope]:
        approvals = []
        for bloc in blocs:
            self.serials[bloc] += 1
            envelope = sign_approval(
                self.keys[key or bloc],
                approver=bloc,
                agreement=self.agreement_digest,
                action=action,
                subject=sha256_digest(payload),
                serial=self.serials[bloc],
                now=self.now(),
            )
            path = (
                self.folder / "approvals" / f"{sha256_digest(payload)[7:19]}-{bloc}-{self.serials[bloc]}.json"
            )
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(envelope.to_json())
            approvals.append(envelope)
        return approvals

    def check(self, guarantee: str, expected: str, observed: str) -> None:
        self.report.checks.append(Check(guarantee, expected, observed))
        mark = "ok" if expected == observed else "MISMATCH"
        self.progress(f"[{mark}] {guarantee}: {observed}")

    def all_devices(self, action: Callable[[Device], object]) -> str:
        """Run ``action`` on every enabled device; return the common outcome or list the odd ones."""
        outcomes = {
            device_id: outcome(functools.partial(action, device))
            for device_id, device in self.devices.items()
        }
        distinct = set(outcomes.values())
        if len(distinct) == 1:
            return distinct.pop()
        return "; ".join(f"{k}: {v}" for k, v in outcomes.items())

    # The story.

    def run(self) -> Report:
        """Play every chapter of the story and return the report."""
        self.setup()
        self.install_and_admit()
        self.attack_updates()
        self.extend_and_expire()
        self.tamper()
        self.verify_evidence()
        self.double_signing()
        self.location_and_registry()
        return self.report

    def location_and_registry(self) -> None:
        self.progress("a region-locked device proves its location, then is moved in secret")

        def advance(seconds: int) -> None:
            self.world_offset += seconds

        run_location_chapter(
            self.folder / "located-treaty",
            keys=self.keys,
            blocs=BLOCS,
            manufacturer=self.keys["manufacturer"],
            host_clock=self._host_clock,
            advance=advance,
            check=self.check,
            identity_keys=self.identity_keys,
        )

    def double_signing(self) -> None:
        self.progress("a second treaty with a transparency log: bloc-c tries to double sign")
        treaty = LoggedTreaty(
            self.folder / "logged-treaty",
            keys=self.keys,
            blocs=BLOCS,
            manufacturer=self.keys["manufacturer"],
            baseline=load_rules_file(self.folder / "rules" / "baseline.toml"),
            host_clock=self._host_clock,
        )
        try:
            rulesets = [load_rules_file(self.folder / "rules" / f"v{v}.toml") for v in (1, 2)]
            run_double_signing(treaty, rulesets, self.check)
        finally:
            treaty.close()

    def install_and_admit(self) -> None:
        self.progress("all three blocs approve ruleset v1 (training capped at 1e25 FLOP)")
        v1 = self.build_update(1, RULES_V1, 90 * DAY)
        v1_approvals = self.approve(v1, Action.INSTALL, BLOCS)
        self.check(
            "update approved by all blocs installs on every device",
            "accepted",
            self.all_devices(lambda d: d.install(v1, v1_approvals)),
        )

        self.v1, self.v1_approvals = v1, v1_approvals
        device = self.devices["dc-east-01"]
        run_a = {
            "workload.kind": "training",
            "workload.run_id": "run-a",
            "workload.flop": 6 * 10**24,
            "workload.cluster_size": 4096,
            "workload.interconnect_gbps": 400,
        }
        self.check(
            "training run under the compute cap is admitted",
            "allowed",
            "allowed" if device.admit(run_a).decision.allowed else "denied",
        )
        more = dict(run_a, **{"workload.flop": 5 * 10**24})
        decision = device.admit(more).decision
        self.check(
            "the same run is denied once its cumulative compute would cross the cap",
            "denied by training-cap",
            f"{'allowed' if decision.allowed else 'denied'} by {decision.rule}",
        )

        self.run_a = run_a

    def attack_updates(self) -> None:
        device = self.devices["dc-east-01"]
        v1, v1_approvals = self.v1, self.v1_approvals
        self.progress("attacks on the update channel")
        v2 = self.build_update(2, RULES_V2, 90 * DAY)
        forged = self.approve(v2, Action.INSTALL, BLOCS, key="forger")
        self.check(
            "forged update (approvals signed by a key outside the agreement) is rejected",
            "rejected: unknown-signer",
            outcome(lambda: device.install(v2, forged)),
        )
        two_of_three = self.approve(v2, Action.INSTALL, BLOCS[:2])
        self.check(
            "update approved by two of three blocs is rejected",
            "rejected: insufficient-approvals",
            outcome(lambda: device.install(v2, two_of_three)),
        )
        tampered = v2.replace(b'"5000000000000000000000000"', b'"9000000000000000000000000"')
        self.check(
            "update altered after approval is rejected",
            "rejected: digest-mismatch",
            outcome(
                lambda: device.install(tampered, two_of_three + self.approve(v2, Action.INSTALL, BLOCS[2:]))
            ),
        )
        v2_approvals = self.approve(v2, Action.INSTALL, BLOCS)
        self.check(
            "stricter update v2 approved by all blocs installs on every device",
            "accepted",
            self.all_devices(lambda d: d.install(v2, v2_approvals)),
        )
        self.check(
            "replay of the older version v1 is rejected",
            "rejected: rollback",
            outcome(lambda: device.install(v1, v1_approvals)),
        )

        self.v2 = v2

    def extend_and_expire(self) -> None:
        device = self.devices["dc-east-01"]
        v1, v2 = self.v1, self.v2
        self.progress("lifetime extensions")
        v2_digest = sha256_digest(v2)
        not_after = parse_statement(v2, RulesetUpdate, what="v2").not_after
        extension = LifetimeExtension(self.agreement_digest, v2_digest, 2, 1, not_after + 30 * DAY).encode()
        ext_approvals = self.approve(extension, Action.EXTEND, BLOCS[:2])
        self.check(
            "extension approved by a majority (2 of 3 blocs) is accepted",
            "accepted",
            self.all_devices(lambda d: d.extend(extension, ext_approvals)),
        )
        other = LifetimeExtension(
            self.agreement_digest, sha256_digest(v1), 1, 2, not_after + 40 * DAY
        ).encode()
        other_approvals = self.approve(other, Action.EXTEND, BLOCS)
        self.check(
            "extension bound to another update is rejected",
            "rejected: extension-mismatch",
            outcome(lambda: device.extend(other, other_approvals)),
        )
        too_long = LifetimeExtension(self.agreement_digest, v2_digest, 2, 3, not_after + 70 * DAY).encode()
        self.check(
            "extension beyond the agreement's cap is rejected",
            "rejected: extension-exceeds-cap",
            outcome(lambda: device.extend(too_long, self.approve(too_long, Action.EXTEND, BLOCS))),
        )

        self.progress("moving every device clock past the extended lifetime")
        self.world_offset += 121 * DAY
        modes = {d.status()["mode"] for d in self.devices.values()}
        self.check("expired update falls back to the baseline ruleset", "baseline", ",".join(sorted(modes)))
        small = {
            "workload.kind": "training",
            "workload.run_id": "run-small",
            "workload.flop": 10**20,
            "workload.cluster_size": 8,
            "workload.interconnect_gbps": 50,
        }
        self.small = small
        big = dict(self.run_a, **{"workload.run_id": "run-big", "workload.flop": 10**24})
        self.check(
            "under the baseline, small workloads run and large ones are denied",
            "allowed/denied",
            f"{'allowed' if device.admit(small).decision.allowed else 'denied'}/"
            f"{'allowed' if device.admit(big).decision.allowed else 'denied'}",
        )
        late = LifetimeExtension(self.agreement_digest, v2_digest, 2, 4, not_after + 50 * DAY).encode()
        late_approvals = self.approve(late, Action.EXTEND, BLOCS[:2])
        self.check(
            "a majority extension of the expired update cannot revive it",
            "rejected: expired",
            outcome(lambda: device.extend(late, late_approvals)),
        )

    def tamper(self) -> None:
        small = self.small
        self.progress("tampering")
        victim = self.devices["dc-west-04"]
        victim.emulator_tamper("enclosure")
        self.check(
            "a tampered device is disabled for good",
            "rejected: device-disabled",
            outcome(lambda: victim.admit(small)),
        )
        edited = self.devices["dc-west-03"]
        state_path = edited.store.state_path
        state_path.write_bytes(
            state_path.read_bytes().replace(b'"highest_version": 2', b'"highest_version": 1')
        )
        self.check(
            "a device whose sealed state was edited treats it as tampering",
            "rejected: device-disabled",
            outcome(lambda: edited.admit(small)),
        )

    def verify_evidence(self) -> None:
        self.progress("independent verifier appraises evidence from every device")
        healthy = {k: v for k, v in self.devices.items() if k not in ("dc-west-03", "dc-west-04")}
        observed = []
        for device_id, each in healthy.items():
            nonce = secrets.token_hex(16)
            bundle = EvidenceBundle(each.attest(nonce), each.certificate())
            path = self.folder / "evidence" / f"{device_id}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(bundle_json(bundle))
            parsed = EvidenceBundle.from_json(path.read_bytes(), what=str(path))
            result = appraise(parsed, agreement_payload=self.agreement_payload, nonce=nonce, now=self.now())
            observed.append(f"{result.device_id}={result.evidence.mode}")
        self.check(
            "evidence from every enabled device verifies (mode baseline)",
            ",".join(f"{d}=baseline" for d in healthy),
            ",".join(observed),
        )
        replayed = EvidenceBundle.from_json(
            (self.folder / "evidence" / "dc-east-01.json").read_bytes(), what="evidence"
        )
        self.check(
            "replayed evidence (answering an old nonce) is rejected",
            "rejected: stale-nonce",
            outcome(
                lambda: appraise(
                    replayed,
                    agreement_payload=self.agreement_payload,
                    nonce=secrets.token_hex(16),
                    now=self.now(),
                )
            ),
        )
        self.check(
            "disabled devices cannot produce evidence",
            "rejected: device-disabled",
            ",".join(
                sorted(
                    {
                        outcome(functools.partial(self.devices[k].attest, "00"))
                        for k in ("dc-west-03", "dc-west-04")
                    }
                )
            ),
        )


def bundle_json(bundle: EvidenceBundle) -> bytes:
    return (json.dumps(bundle.to_dict(), indent=2) + "\n").encode("utf-8")
