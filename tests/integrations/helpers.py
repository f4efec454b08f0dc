"""A one-approver agreement and a device whose installed ruleset caps training compute."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from flexheg.authority import sign_approval
from flexheg.device import Agreement, AgreementKind, Device
from flexheg.policy import Action, Approver, ApproverKey, Policy
from flexheg.rules import RulesetUpdate, load_rules_file
from flexheg.wire import SigningKey, sha256_digest

DAY = 86400

CAP_RULES = """\
[caps]
training_flop = "{cap}"

[[rule]]
id = "training-cap"
effect = "deny"
when = 'workload.kind in ["training", "fine-tuning"] && run.flop_total > caps.training_flop'
reason = "training runs are capped at {cap} FLOP"

[[rule]]
id = "declared-work"
effect = "allow"
when = "workload.cluster_size <= 100000"
reason = "workloads on up to 100000 accelerators may run"
"""


@dataclass(frozen=True)
class Setup:
    device: Device
    agreement_payload: bytes
    manufacturer: SigningKey
    holder: SigningKey


def provision(folder: Path, *, cap: int, device_id: str = "dc-1-01") -> Setup:
    """Provision a device under a one-approver agreement and install a ruleset capping training at ``cap``."""
    approver = SigningKey.generate()
    manufacturer = SigningKey.generate()
    agreement = Agreement(
        name="training test agreement",
        kind=AgreementKind.RULESET,
        approvers=(Approver("bloc-a", 1, (ApproverKey(approver.public),)),),
        policies={action: Policy("all") for action in Action},
        manufacturers=(manufacturer.public,),
        baseline=None,
        max_lifetime=90 * DAY,
        max_extension=30 * DAY,
    )
    payload = agreement.encode()
    device = Device.provision(
        folder / device_id, agreement_payload=payload, manufacturer_key=manufacturer, device_id=device_id
    )
    rules_path = folder / "rules.toml"
    rules_path.write_text(CAP_RULES.format(cap=cap), encoding="utf-8")
    now = int(time.time())
    update = RulesetUpdate(sha256_digest(payload), 1, now, 30 * DAY, load_rules_file(rules_path)).encode()
    approval = sign_approval(
        approver,
        approver="bloc-a",
        agreement=sha256_digest(payload),
        action=Action.INSTALL,
        subject=sha256_digest(update),
        serial=1,
        now=now,
    )
    device.install(update, [approval])
    return Setup(device, payload, manufacturer, SigningKey.generate())
