"""Train a small classifier on scikit-learn's handwritten digits under a metered compute cap.

The script plays every party on one machine:

1. a manufacturer provisions a device under a one-approver agreement, and the approver installs
   a ruleset that caps training runs at ``--cap`` FLOP;
2. the lab trains a multilayer perceptron on the CPU, every step metered by the device, and
   evaluates it;
3. the device signs the training record and its SD-JWT, with the predicate
   "run.flop_total < CAP" evaluated on its own metered total;
4. the lab presents only that predicate and the weight digest to a verifier, which checks the
   presentation, and anyone checks that the released weights match the record.

Run: ``python examples/train_digits.py --dir /tmp/digits`` (needs ``flexheg[torch]``).
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits  # type: ignore[import-untyped]

from flexheg.attest.disclosure import present, verify_presentation
from flexheg.authority import sign_approval
from flexheg.device import Agreement, AgreementKind, Device
from flexheg.device.records import verify_record
from flexheg.integrations.torch import TrainingRun
from flexheg.integrations.weights import file_digest
from flexheg.policy import Action, Approver, ApproverKey, Policy
from flexheg.rules import RulesetUpdate, load_rules_file
from flexheg.wire import SigningKey, sha256_digest

DAY = 86400
RULES = """\
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


def provision_device(folder: Path, cap: int) -> tuple[Device, bytes]:
    """Provision a device and install a ruleset capping training compute at ``cap`` FLOP."""
    approver, manufacturer = SigningKey.generate(), SigningKey.generate()
    agreement = Agreement(
        name="digits example agreement",
        kind=AgreementKind.RULESET,
        approvers=(Approver("bloc-a", 1, (ApproverKey(approver.public),)),),
        policies={action: Policy("all") for action in Action},
        manufacturers=(manufacturer.public,),
        baseline=None,
        max_lifetime=90 * DAY,
        max_extension=30 * DAY,
    )
    payload = agreement.encode()
    (folder / "agreement.json").write_bytes(payload)
    device = Device.provision(
        folder / "device", agreement_payload=payload, manufacturer_key=manufacturer, device_id="lab-gpu-01"
    )
    rules_path = folder / "rules.toml"
    rules_path.write_text(RULES.format(cap=cap), encoding="utf-8")
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
    return device, payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="output folder (default: a new temporary one)")
    parser.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    parser.add_argument("--cap", default="1e12", help="training compute cap in FLOP (default 1e12)")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="flexheg-digits-"))
    folder.mkdir(parents=True, exist_ok=True)
    cap = int(float(args.cap))
    device, agreement_payload = provision_device(folder, cap)
    lab_key = SigningKey.generate()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    digits = load_digits()
    inputs = torch.tensor(digits.data, dtype=torch.float32) / 16
    labels = torch.tensor(digits.target)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_of(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    def accuracy() -> torch.Tensor:
        correct: torch.Tensor = (model(inputs).argmax(dim=1) == labels).float().mean()
        return correct

    predicate = f"run.flop_total < {args.cap}"
    with TrainingRun(
        device,
        model,
        optimizer,
        run_id="digits-mlp",
        static_graph=True,
        weights_every=20,
        transcript_path=folder / "transcript.jsonl",
    ) as run:
        run.add_dataset("sklearn-digits", (inputs, labels))
        batch_size = 64
        for step in range(args.steps):
            start = step * batch_size % (len(labels) - batch_size)
            run.step((inputs[start : start + batch_size], labels[start : start + batch_size]), loss_of)
        passed = run.evaluate("digits-accuracy", accuracy, threshold=0.85)
        issued = run.finish(
            holder=lab_key.public, predicates=[predicate, '"digits-accuracy" in workload.evals_passed']
        )

    save_file(model.state_dict(), str(folder / "model.safetensors"))
    (folder / "record.json").write_bytes(issued.bundle.to_json())
    assert issued.credential is not None
    (folder / "record.sd-jwt").write_text(issued.credential + "\n", encoding="ascii")

    # The verifier picks a nonce; the lab discloses the predicate and the weight digest only.
    nonce = secrets.token_hex(16)
    now = int(time.time())
    presentation = present(
        issued.credential,
        disclose=[f"predicates/{predicate}", "weights"],
        holder_key=lab_key,
        audience="verifier-state-b",
        nonce=nonce,
        now=now,
    )
    verified = verify_presentation(
        presentation, agreement_payload=agreement_payload, audience="verifier-state-b", nonce=nonce, now=now
    )
    verified.require_predicate(predicate)
    record = verify_record(issued.bundle, agreement_payload=agreement_payload)
    weights_match = file_digest(folder / "model.safetensors") == record.weights == verified.claims["weights"]

    print(f"trained {run.steps} steps; evaluation digits-accuracy passed: {passed}")
    print(f"device-metered compute: {record.flop_total} FLOP (hidden from the verifier)")
    print(f"verifier saw: {verified.predicates} and weights {verified.claims['weights']}")
    print(f"released weights match the record: {weights_match}")
    print(f"files in {folder}")
    if not weights_match:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
