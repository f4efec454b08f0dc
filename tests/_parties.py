"""A simulator of the parties around a guarantee processor, for attack tests.

:class:`Parties` contains real Ed25519 keys for the approver blocs, a manufacturer and a forger,
writes the agreement they signed up to, and builds the statements they exchange with devices:
ruleset updates, lifetime extensions and approvals. Tests drive devices through the real
interfaces (the pure processor, :class:`flexheg.device.Device` on real folders and the
``flexheg`` command) with what this module builds.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import typer
from typer.testing import CliRunner, Result

from flexheg.authority import sign_approval
from flexheg.device import (
    Agreement,
    AgreementKind,
    Device,
    DeviceCertificate,
    DeviceState,
    LifetimeExtension,
    power_event,
)
from flexheg.policy import Action, Approver, ApproverKey, Policy
from flexheg.rules import Ruleset, RulesetUpdate
from flexheg.wire import (
    Envelope,
    EnvelopeSignature,
    PublicKey,
    SigningKey,
    parse_statement,
    sha256_digest,
    write_key_pair,
)

DAY = 86400
START = 1_800_000_000
"""Device time at provisioning in tests that use a fake host clock (a tick in 2027)."""

BLOCS = ("bloc-a", "bloc-b", "bloc-c")

BASELINE: dict[str, Any] = {
    "caps": {},
    "rules": [
        {
            "id": "small-clusters",
            "effect": "allow",
            "when": "workload.cluster_size <= 64 && run.flop_total <= 1e22",
            "reason": "small clusters may run anything up to 1e22 FLOP",
        }
    ],
    "succession": [],
}

CAPPED: dict[str, Any] = {
    "caps": {"training_flop": "1000000"},
    "rules": [
        {
            "id": "training-cap",
            "effect": "deny",
            "when": "workload.kind == 'training' && run.flop_total > caps.training_flop",
            "reason": "training runs are capped at 1e6 FLOP",
        },
        {
            "id": "declared-work",
            "effect": "allow",
            "when": "workload.cluster_size <= 100000",
            "reason": "declared workloads on up to 100000 accelerators may run",
        },
    ],
    "succession": [],
}


def ruleset(document: Mapping[str, Any]) -> Ruleset:
    """Build a ruleset from its JSON form (``rules``, ``caps``, ``succession``)."""
    return Ruleset.from_dict(json.loads(json.dumps(document)), where="test ruleset")


def workload(
    run_id: str = "run-1", flop: int = 1000, *, kind: str = "training", cluster: int = 8
) -> dict[str, Any]:
    """Return the facts of a workload descriptor, as ``parse_workload`` would."""
    return {
        "workload.kind": kind,
        "workload.run_id": run_id,
        "workload.flop": flop,
        "workload.cluster_size": cluster,
        "workload.interconnect_gbps": 50,
    }


class FakeClock:
    """A host clock that tests set and move, including backwards."""

    def __init__(self, value: int = START) -> None:
        self.value = value

    def __call__(self) -> float:
        return float(self.value)


@dataclasses.dataclass
class Parties:
    """Approvers, a manufacturer and a forger with real keys, and the agreement between them."""

    approver_ids: tuple[str, ...] = BLOCS
    install_policy: Policy = dataclasses.field(default_factory=lambda: Policy("all"))
    extend_policy: Policy = dataclasses.field(default_factory=lambda: Policy("majority"))
    max_lifetime: int = 90 * DAY
    max_extension: int = 30 * DAY
    baseline: Mapping[str, Any] | None = dataclasses.field(default_factory=lambda: BASELINE)
    windows: Mapping[str, tuple[int | None, int | None]] = dataclasses.field(default_factory=dict)
    alias_keyids: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Approver id to a second key id under which the agreement lists the same key."""

    def __post_init__(self) -> None:
        self.keys = {name: SigningKey.generate() for name in self.approver_ids}
        self.manufacturer = SigningKey.generate()
        self.forger = SigningKey.generate()
        self.serials = dict.fromkeys(self.approver_ids, 0)
        self.agreement_payload = self._agreement().encode()
        self.agreement = parse_statement(self.agreement_payload, Agreement, what="agreement")
        self.agreement_digest = sha256_digest(self.agreement_payload)

    def _agreement(self) -> Agreement:
        approvers = []
        for name in self.approver_ids:
            valid_from, valid_until = self.windows.get(name, (None, None))
            keys = [ApproverKey(self.keys[name].public, valid_from, valid_until)]
            alias = self.alias_keyids.get(name)
            if alias is not None:
                keys.append(
                    ApproverKey(PublicKey(alias, self.keys[name].public.key), valid_from, valid_until)
                )
            approvers.append(Approver(name, 1, tuple(keys)))
        return Agreement(
            name="test treaty",
            kind=AgreementKind.RULESET,
            approvers=tuple(approvers),
            policies={
                Action.INSTALL: self.install_policy,
                Action.EXTEND: self.extend_policy,
                Action.CHANGE_APPROVERS: Policy("all"),
            },
            manufacturers=(self.manufacturer.public,),
            baseline=None if self.baseline is None else ruleset(self.baseline),
            max_lifetime=self.max_lifetime,
            max_extension=self.max_extension,
        )

    # Statements the approvers build and sign.

    def update(
        self,
        version: int,
        *,
        issued_at: int = START,
        lifetime: int = 30 * DAY,
        rules: Mapping[str, Any] = CAPPED,
        agreement: str | None = None,
        description: str = "",
    ) -> bytes:
        """Return the canonical bytes of a ruleset update."""
        update = RulesetUpdate(
            agreement=agreement or self.agreement_digest,
            version=version,
            issued_at=issued_at,
            lifetime=lifetime,
            ruleset=ruleset(rules),
            description=description,
        )
        return update.encode()

    def extension(self, update: bytes, *, serial: int, add: int, version: int | None = None) -> bytes:
        """Return an extension of ``update`` that moves its original expiry by ``add`` seconds."""
        original = parse_statement(update, RulesetUpdate, what="update")
        return LifetimeExtension(
            agreement=self.agreement_digest,
            update=sha256_digest(update),
            version=original.version if version is None else version,
            serial=serial,
            not_after=original.not_after + add,
        ).encode()

    def approve(
        self,
        subject: bytes,
        action: Action = Action.INSTALL,
        approvers: Iterable[str] | None = None,
        *,
        key: SigningKey | None = None,
        agreement: str | None = None,
        time: int = START,
    ) -> list[Envelope]:
        """Sign one approval per approver (all by default), each under its next serial."""
        envelopes = []
        for name in self.approver_ids if approvers is None else approvers:
            self.serials[name] = self.serials.get(name, 0) + 1
            envelopes.append(
                sign_approval(
                    key or self.keys[name],
                    approver=name,
                    agreement=agreement or self.agreement_digest,
                    action=action,
                    subject=sha256_digest(subject),
                    serial=self.serials[name],
                    now=time,
                )
            )
        return envelopes

    def approve_under_keyid(self, subject: bytes, approver: str, keyid: str) -> Envelope:
        """Sign an approval by ``approver`` whose signature entry names ``keyid``."""
        envelope = self.approve(subject, Action.INSTALL, [approver])[0]
        return dataclasses.replace(
            envelope, signatures=(EnvelopeSignature(keyid, envelope.signatures[0].sig),)
        )

    # Devices.

    def certificate(self, device_id: str, identity: SigningKey, issued_at: int = START) -> Envelope:
        statement = DeviceCertificate(
            device_id, identity.public, "test-model", self.agreement_digest, issued_at
        )
        return Envelope.sign(statement, self.manufacturer)

    def state(self, now: int = START, device_id: str = "dev-1") -> DeviceState:
        """Return the state of a freshly provisioned device, for the pure processor."""
        identity = SigningKey.generate()
        state = DeviceState(
            device_id=device_id,
            agreement_payload=self.agreement_payload,
            agreement=self.agreement,
            certificate=self.certificate(device_id, identity, now),
            clock_high_water=now,
        )
        return power_event(state, "power-on", now)

    def provision(self, folder: Path, clock: FakeClock | None = None, device_id: str = "dev-1") -> Device:
        """Provision a device in ``folder`` whose host clock is ``clock`` (the real clock if None)."""
        if clock is None:
            return Device.provision(
                folder,
                agreement_payload=self.agreement_payload,
                manufacturer_key=self.manufacturer,
                device_id=device_id,
            )
        return Device.provision(
            folder,
            agreement_payload=self.agreement_payload,
            manufacturer_key=self.manufacturer,
            device_id=device_id,
            host_clock=clock,
        )

    # Files, for the command line.

    def write_files(self, folder: Path) -> dict[str, Path]:
        """Write the agreement and every key pair into ``folder``; return their paths by name."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"agreement": folder / "agreement.json"}
        paths["agreement"].write_bytes(self.agreement_payload)
        named = {**self.keys, "manufacturer": self.manufacturer, "forger": self.forger}
        for name, key in named.items():
            private, public = write_key_pair(key, folder / "keys" / name)
            paths[f"{name}.pem"] = private
            paths[f"{name}.pub"] = public
        return paths


def write_approvals(folder: Path, envelopes: Sequence[Envelope], stem: str) -> list[Path]:
    """Write approval envelopes as files and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, envelope in enumerate(envelopes):
        path = folder / f"{stem}-{index}.json"
        path.write_bytes(envelope.to_json())
        paths.append(path)
    return paths


@functools.cache
def _click_command() -> Any:
    """Build the click command tree of ``flexheg`` once: Typer rebuilds it on every invoke."""
    from flexheg.cli import _register, app  # noqa: PLC0415

    if not app.registered_groups and not app.registered_commands:
        _register()
    return typer.main.get_command(app)


class _Runner(CliRunner):
    """A runner that reuses the command tree, so that each invoke costs the command alone."""

    def invoke(
        self,
        app: typer.Typer,
        args: str | Sequence[str] | None = None,
        input: bytes | str | None = None,
        env: Mapping[str, str | None] | None = None,
        catch_exceptions: bool = True,
        color: bool = False,
        **extra: Any,
    ) -> Result:
        command = _click_command()
        # The root callback binds a log handler to this invocation's stderr; restore the old
        # handlers so that later tests never log to a closed stream.
        package_logger = logging.getLogger("flexheg")
        handlers, level = package_logger.handlers[:], package_logger.level
        try:
            with mock.patch("typer.testing._get_command", return_value=command):
                return super().invoke(app, args, input, env, catch_exceptions, color, **extra)
        finally:
            package_logger.handlers[:] = handlers
            package_logger.setLevel(level)


def cli() -> CliRunner:
    """Return a runner for the ``flexheg`` app, with every command group registered once."""
    _click_command()
    return _Runner()


def run_cli(*args: str | Path) -> tuple[int, Any, str]:
    """Run ``flexheg ARGS --json`` in-process; return the exit code, the parsed JSON and stderr."""
    from flexheg.cli import app  # noqa: PLC0415

    result = cli().invoke(app, [str(a) for a in args] + ["--json"], catch_exceptions=False)
    document = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, document, result.stderr
