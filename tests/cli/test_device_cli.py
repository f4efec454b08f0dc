"""The ``flexheg`` commands of the device workflow: JSON output, exit codes and bad input.

Exit codes (``flexheg.cli._output``): 0 success, 1 rejected or denied with the reason code in the
output, 2 usage or input error. Bad input must name the file and the fix, and leave the device's
``state.json`` byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _parties import _click_command as click_command
from _parties import cli, run_cli

BASELINE = """\
[[rule]]
id = "small-clusters"
effect = "allow"
when = "workload.cluster_size <= 64 && run.flop_total <= 1e22"
reason = "small clusters may run anything up to 1e22 FLOP"
"""

RULES = """\
[caps]
training_flop = "1e25"

[[rule]]
id = "training-cap"
effect = "deny"
when = 'workload.kind == "training" && run.flop_total > caps.training_flop'
reason = "training runs are capped at 1e25 FLOP"

[[rule]]
id = "declared-work"
effect = "allow"
when = "workload.cluster_size <= 100000"
reason = "declared workloads on up to 100000 accelerators may run"
"""

BLOCS = ("bloc-a", "bloc-b", "bloc-c")


@dataclass
class World:
    """Files of a treaty written by the CLI itself, and one provisioned device."""

    root: Path
    agreement: Path
    update: Path
    approvals: list[Path]
    device: Path

    @property
    def state(self) -> Path:
        return self.device / "state.json"

    def key(self, name: str, suffix: str = ".pem") -> Path:
        return self.root / "keys" / f"{name}{suffix}"

    def approve(self, subject: Path, blocs: tuple[str, ...] = BLOCS) -> list[Path]:
        paths = []
        for bloc in blocs:
            out = self.root / "approvals" / f"{subject.stem}-{bloc}.json"
            code, document, _ = run_cli(
                "approve", subject, "--approver", bloc, "--key", self.key(bloc), "--out", out
            )
            assert code == 0, document
            paths.append(out)
        return paths


def ok(*args: str | Path) -> dict[str, Any]:
    code, document, stderr = run_cli(*args)
    assert code == 0, (document, stderr)
    assert document is not None
    return dict(document)


@pytest.fixture
def world(tmp_path: Path) -> World:
    for name in (*BLOCS, "manufacturer"):
        document = ok("key", "generate", tmp_path / "keys" / name)
        assert document["keyid"]
    (tmp_path / "baseline.toml").write_text(BASELINE)
    (tmp_path / "v1.toml").write_text(RULES)
    agreement = tmp_path / "agreement.json"
    ok(
        "agreement", "create", "--out", agreement,
        *[f"--approver={b}={tmp_path / 'keys' / b}.pub.json" for b in BLOCS],
        "--manufacturer", tmp_path / "keys" / "manufacturer.pub.json",
        "--baseline", tmp_path / "baseline.toml",
        "--max-extension", "30d",
    )  # fmt: skip
    update = tmp_path / "v1.json"
    ok("ruleset", "build", tmp_path / "v1.toml", "--agreement", agreement, "--version", "1", "--out", update)
    device = tmp_path / "dev1"
    ok(
        "device", "provision", device, "--agreement", agreement,
        "--manufacturer-key", tmp_path / "keys" / "manufacturer.pem", "--device-id", "dev-1",
    )  # fmt: skip
    world = World(tmp_path, agreement, update, [], device)
    world.approvals = world.approve(update)
    return world


def install_args(
    world: World, update: Path | None = None, approvals: list[Path] | None = None
) -> list[str | Path]:
    return [
        "device", "install", world.device, update or world.update,
        *[f"--approval={p}" for p in (world.approvals if approvals is None else approvals)],
    ]  # fmt: skip


def workload_file(world: World, name: str, document: object) -> Path:
    path = world.root / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


# The whole workflow, every command with --json.


def test_workflow_json(world: World) -> None:
    shown = ok("agreement", "show", world.agreement)
    assert [a["id"] for a in shown["approvers"]] == list(BLOCS)

    installed = ok(*install_args(world))
    assert installed["version"] == 1
    assert installed["approvals"]["signed"] == list(BLOCS)

    small = workload_file(
        world, "small", {"kind": "training", "run_id": "r", "flop": "6e24", "cluster_size": 8}
    )
    admitted = ok("device", "admit", world.device, small)
    assert admitted["allowed"] is True
    assert admitted["run_flop_total"] == str(6 * 10**24)

    code, denied, _ = run_cli("device", "admit", world.device, small)
    assert code == 1
    assert denied["ok"] is False
    assert denied["reason_code"] == "workload-denied"
    assert denied["rule"] == "training-cap"

    extension = world.root / "ext1.json"
    ok("ruleset", "extension", world.update, "--serial", "1", "--add", "10d", "--out", extension)
    extended = ok(
        "device",
        "extend",
        world.device,
        extension,
        *[f"--approval={p}" for p in world.approve(extension, BLOCS[:2])],
    )
    assert extended["serial"] == 1

    evidence = world.root / "evidence.json"
    nonce = "ab" * 16
    ok("device", "attest", world.device, "--nonce", nonce, "--out", evidence)
    verified = ok("verify", "evidence", evidence, "--agreement", world.agreement, "--nonce", nonce)
    assert verified["device_id"] == "dev-1"
    assert verified["ruleset_version"] == 1
    code, stale, _ = run_cli(
        "verify", "evidence", evidence, "--agreement", world.agreement, "--nonce", "cd" * 16
    )
    assert code == 1
    assert stale["reason"] == "stale-nonce"

    assert ok("emulator", "power", world.device, "off")["event"] == "power-off"
    exported = ok("device", "power-log", world.device, "--out", world.root / "power.json")
    assert exported["entries"] == 2
    status = ok("device", "status", world.device)
    assert status["installed_version"] == 1
    before = status["time"]
    assert ok("emulator", "advance-clock", world.device, "--by", "100d")["time"] >= before + 100 * 86400
    assert ok("device", "status", world.device)["mode"] == "baseline"

    assert ok("emulator", "tamper", world.device, "--sensor", "mesh")["disabled"] is True
    code, disabled, _ = run_cli("device", "status", world.device)
    assert code == 1
    assert disabled["reason"] == "device-disabled"
    assert "tamper sensor fired: mesh" in disabled["message"]


def test_rejection_exit_1_with_reason(world: World) -> None:
    before = world.state.read_bytes()
    code, document, _ = run_cli(*install_args(world, approvals=world.approvals[:2]))
    assert code == 1
    assert document["ok"] is False
    assert document["reason"] == "insufficient-approvals"
    assert document["expected"] == "3 votes"
    assert document["actual"] == "2 votes from bloc-a, bloc-b"
    assert world.state.read_bytes() == before


def test_rejection_text_shows_expected_and_actual(world: World) -> None:
    from flexheg.cli import app  # noqa: PLC0415

    result = cli().invoke(app, [str(a) for a in install_args(world, approvals=world.approvals[:2])])
    assert result.exit_code == 1
    assert "insufficient-approvals" in result.stderr
    assert "expected: 3 votes" in result.stderr
    assert "actual:   2 votes from bloc-a, bloc-b" in result.stderr


def test_workload_denied_exit_1(world: World) -> None:
    """A workload the rules deny exits 1 with the reason code, the rule and its reason."""
    ok(*install_args(world))
    big = workload_file(
        world, "big", {"kind": "training", "run_id": "r", "flop": "2e25", "cluster_size": 4096}
    )
    before = world.state.read_bytes()
    code, document, _ = run_cli("device", "admit", world.device, big)
    assert code == 1
    assert document["ok"] is False
    assert document["reason_code"] == "workload-denied"
    assert document["rule"] == "training-cap"
    assert document["reason"] == "training runs are capped at 1e25 FLOP"
    assert document["run_flop_total"] == "0"
    assert world.state.read_bytes() != before
    assert ok("device", "status", world.device)["counters"]["denied"] == 1


def test_rollback_over_cli(world: World) -> None:
    ok(*install_args(world))
    code, document, _ = run_cli(*install_args(world))
    assert code == 1
    assert document["reason"] == "rollback"
    assert document["expected"] == "version > 1"


# Bad input: exit 2, the file and the fix named, the state untouched.


def assert_input_error(world: World, args: list[str | Path], *needles: str) -> None:
    before = world.state.read_bytes()
    code, document, _ = run_cli(*args)
    assert code == 2, document
    assert document["ok"] is False
    assert document["error"] == "input"
    for needle in needles:
        assert needle in document["message"], document["message"]
    assert world.state.read_bytes() == before


def test_truncated_update_file(world: World) -> None:
    truncated = world.root / "truncated.json"
    truncated.write_bytes(world.update.read_bytes()[:-40])
    assert_input_error(world, install_args(world, truncated), str(truncated), "truncated")


def test_pretty_printed_update_file(world: World) -> None:
    pretty = world.root / "pretty.json"
    pretty.write_text(json.dumps(json.loads(world.update.read_bytes()), indent=2))
    assert_input_error(
        world, install_args(world, pretty), str(pretty), "canonical", "re-encode it with flexheg"
    )


def test_update_with_trailing_newline(world: World) -> None:
    edited = world.root / "newline.json"
    edited.write_bytes(world.update.read_bytes() + b"\n")
    assert_input_error(world, install_args(world, edited), str(edited), "newline", "remove it")


def test_approval_with_duplicate_key(world: World) -> None:
    doubled = world.root / "doubled.json"
    text = world.approvals[0].read_text()
    doubled.write_text(text.replace('"payloadType":', '"payloadType": "x", "payloadType":', 1))
    approvals = [doubled, *world.approvals[1:]]
    assert_input_error(world, install_args(world, approvals=approvals), str(doubled), "duplicate JSON key")


def test_key_file_passed_as_approval(world: World) -> None:
    key = world.key("bloc-a")
    approvals = [key, *world.approvals[1:]]
    assert_input_error(world, install_args(world, approvals=approvals), str(key), "invalid JSON")


def test_missing_approval_file(world: World) -> None:
    absent = world.root / "absent.json"
    assert_input_error(world, install_args(world, approvals=[absent]), str(absent), "not found")


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        ({"kind": "training", "run_id": "r", "flop": "6e24"}, "missing required field 'cluster_size'"),
        ({"kind": "mining", "run_id": "r", "flop": 1, "cluster_size": 8}, "is not one of"),
        ({"kind": "training", "run_id": "r", "flop": -1, "cluster_size": 8}, "not a non-negative integer"),
        ({"kind": "training", "run_id": "r", "flop": 1, "cluster_size": 8, "gpu": "x"}, "unknown field"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_malformed_workload_descriptor(world: World, document: object, needle: str) -> None:
    path = workload_file(world, "bad-workload", document)
    assert_input_error(world, ["device", "admit", world.device, path], str(path), needle)


def test_workload_descriptor_duplicate_key(world: World) -> None:
    path = world.root / "dup-workload.json"
    path.write_text('{"kind": "training", "kind": "inference", "run_id": "r", "flop": 1, "cluster_size": 8}')
    assert_input_error(world, ["device", "admit", world.device, path], str(path), "duplicate JSON key")


def test_public_key_as_signing_key(world: World) -> None:
    public = world.key("bloc-a", ".pub.json")
    out = world.root / "never.json"
    assert_input_error(
        world,
        ["approve", world.update, "--approver", "bloc-a", "--key", public, "--out", out],
        str(public),
        "pass the .pem file",
    )
    assert not out.exists()


def test_garbage_signing_key(world: World) -> None:
    garbage = world.root / "garbage.pem"
    garbage.write_bytes(b"\x00garbage")
    assert_input_error(
        world,
        ["approve", world.update, "--approver", "bloc-a", "--key", garbage, "--out", world.root / "x.json"],
        str(garbage),
        "not an unencrypted PEM private key",
    )


def test_public_key_as_manufacturer_key(world: World) -> None:
    public = world.key("manufacturer", ".pub.json")
    folder = world.root / "dev2"
    code, document, _ = run_cli(
        "device", "provision", folder, "--agreement", world.agreement,
        "--manufacturer-key", public, "--device-id", "dev-2",
    )  # fmt: skip
    assert code == 2
    assert str(public) in document["message"]
    assert not folder.exists()


def test_pretty_printed_agreement_at_provision(world: World) -> None:
    pretty = world.root / "pretty-agreement.json"
    pretty.write_text(json.dumps(json.loads(world.agreement.read_bytes()), indent=2))
    folder = world.root / "dev2"
    code, document, _ = run_cli(
        "device", "provision", folder, "--agreement", pretty,
        "--manufacturer-key", world.key("manufacturer"), "--device-id", "dev-2",
    )  # fmt: skip
    assert code == 2
    assert str(pretty) in document["message"]
    assert "canonical" in document["message"]
    assert not folder.exists()


def test_truncated_agreement_at_verify(world: World) -> None:
    evidence = world.root / "evidence.json"
    ok("device", "attest", world.device, "--nonce", "ab", "--out", evidence)
    truncated = world.root / "truncated-agreement.json"
    truncated.write_bytes(world.agreement.read_bytes()[:-10])
    code, document, _ = run_cli("verify", "evidence", evidence, "--agreement", truncated, "--nonce", "ab")
    assert code == 2
    assert str(truncated) in document["message"]
    assert "truncated" in document["message"]


def test_usage_error_exit_2(world: World) -> None:
    from flexheg.cli import app  # noqa: PLC0415

    result = cli().invoke(app, ["device", "install", str(world.device)])
    assert result.exit_code == 2
    result = cli().invoke(app, ["device", "no-such-command"])
    assert result.exit_code == 2


# Sealed-state integrity through the CLI.


def test_edited_state_reports_disabled(world: World) -> None:
    ok(*install_args(world))
    world.state.write_bytes(
        world.state.read_bytes().replace(b'"highest_version": 1', b'"highest_version": 0')
    )
    code, document, _ = run_cli("device", "status", world.device)
    assert code == 1
    assert document["reason"] == "device-disabled"
    assert "does not match its MAC" in document["message"]
    code, document, _ = run_cli(*install_args(world))
    assert code == 1
    assert document["reason"] == "device-disabled"


def test_deleted_seal_key_reports_disabled(world: World) -> None:
    (world.device / "seal.key").unlink()
    code, document, _ = run_cli("device", "status", world.device)
    assert code == 1
    assert document["reason"] == "device-disabled"
    assert "sealing key is missing" in document["message"]
    assert (world.device / "DISABLED").exists()


# Every command of the device workflow takes --json.


def _commands(command: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:
        for name, sub in subcommands.items():
            yield from _commands(sub, (*prefix, name))
    else:
        yield prefix, command


@pytest.mark.parametrize(
    "group", ["key", "agreement", "ruleset", "approve", "device", "emulator", "verify", "demo"]
)
def test_every_command_takes_json(group: str) -> None:
    root = click_command()
    commands = list(_commands(root.commands[group], (group,)))
    assert commands
    for path, command in commands:
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert "--json" in options, " ".join(path)
