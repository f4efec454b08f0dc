"""Installing operating licenses on a device, with and without a transparency log."""

from __future__ import annotations

from pathlib import Path

import pytest

from _parties import START, FakeClock, workload
from flexheg.device import Agreement, AgreementKind, Device, LogConfig, NamedKeys
from flexheg.device.license import OperatingLicense
from flexheg.errors import Reason, Rejected
from flexheg.policy import Action, Approver, ApproverKey, Policy
from flexheg.rules import Ruleset, parse_rule
from flexheg.wire import Envelope, SigningKey, sha256_digest
from flexheg.wire.checkpoint import NoteSigner

LICENSED_ONLY = Ruleset(
    [
        parse_rule(
            {"id": "licensed", "effect": "allow", "when": "device.licensed", "reason": "licensed"},
            caps={},
            where="t",
        )
    ]
)


def _agreement(state_key: SigningKey, manufacturer: SigningKey, *, logged: bool) -> bytes:
    approver = SigningKey.generate()
    log = None
    if logged:
        signer = NoteSigner.generate("log.example/test")
        witness = NoteSigner.generate("witness.example/w1")
        log = LogConfig(
            "log.example/test", signer.verifier().to_vkey(), (witness.cosignature_verifier().to_vkey(),), 1
        )
    return Agreement(
        name="license test",
        kind=AgreementKind.RULESET,
        approvers=(Approver("bloc-a", 1, (ApproverKey(approver.public),)),),
        policies={action: Policy("all") for action in Action},
        manufacturers=(manufacturer.public,),
        baseline=LICENSED_ONLY,
        max_lifetime=86400,
        max_extension=0,
        licensing_states=(NamedKeys("state-a", (state_key.public,)),),
        log=log,
    ).encode()


def _license(state_key: SigningKey, payload: bytes, device_id: str = "dev-1") -> Envelope:
    statement = OperatingLicense(device_id, sha256_digest(payload), "state-a", 1, START - 10, START + 3600)
    return Envelope.sign(statement, state_key)


def _device(tmp_path: Path, *, logged: bool) -> tuple[Device, SigningKey, bytes]:
    state_key, manufacturer = SigningKey.generate(), SigningKey.generate()
    payload = _agreement(state_key, manufacturer, logged=logged)
    device = Device.provision(
        tmp_path / "dev",
        agreement_payload=payload,
        manufacturer_key=manufacturer,
        device_id="dev-1",
        host_clock=FakeClock(),
    )
    return device, state_key, payload


def test_license_makes_device_licensed(tmp_path: Path) -> None:
    device, state_key, payload = _device(tmp_path, logged=False)
    assert not device.admit(workload("r1")).decision.allowed
    granted = device.install_license(_license(state_key, payload))
    assert granted.licensing_state == "state-a"
    assert device.admit(workload("r2")).decision.allowed


def test_license_for_other_device_rejected(tmp_path: Path) -> None:
    device, state_key, payload = _device(tmp_path, logged=False)
    with pytest.raises(Rejected) as exc:
        device.install_license(_license(state_key, payload, device_id="dev-2"))
    assert exc.value.reason is Reason.WRONG_DEVICE


def test_logged_agreement_needs_logged_license(tmp_path: Path) -> None:
    device, state_key, payload = _device(tmp_path, logged=True)
    before = device.store.state_path.read_bytes()
    with pytest.raises(Rejected) as exc:
        device.install_license(_license(state_key, payload))
    assert exc.value.reason is Reason.NOT_LOGGED
    assert device.store.state_path.read_bytes() == before
