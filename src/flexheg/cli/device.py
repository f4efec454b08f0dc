"""``flexheg device``: provision and operate an emulated guarantee processor."""

from __future__ import annotations

from json import dumps
from pathlib import Path
from typing import Annotated, TextIO

import typer

from flexheg.attest import EvidenceBundle
from flexheg.cli._files import read_bytes, read_envelope, read_json, read_statement
from flexheg.cli._output import EXIT_REJECTED, JsonOption, emit, handle_errors
from flexheg.device import Agreement, ApproverSetChange, Device, LifetimeExtension
from flexheg.errors import InputError, Reason, Rejected
from flexheg.rules import RulesetUpdate, parse_workload
from flexheg.wire import Envelope, load_signing_key
from flexheg.wire._statement import S

app = typer.Typer(no_args_is_help=True)


def _open_output(path: Path) -> TextIO:
    """Open an output file before the device acts, so that an unwritable path changes nothing."""
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"{path}: cannot write the output file ({exc.strerror}); choose another --out"
        ) from None


DeviceDir = Annotated[Path, typer.Argument(help="Device folder.")]
Approvals = Annotated[list[Path], typer.Option("--approval", help="Approval file; repeat for each.")]
LogBundleOption = Annotated[
    Path | None,
    typer.Option(
        "--log-bundle", help="Proof bundle from 'flexheg log prove' (needed when the agreement names a log)."
    ),
]


def _read_bundle(path: Path | None) -> bytes | None:
    return read_bytes(path, what="log bundle") if path else None


def _signed_inputs(
    subject: Path, cls: type[S], approval_paths: list[Path], log_bundle: Path | None
) -> tuple[bytes, list[Envelope], bytes | None]:
    """Read a subject statement file, its approval files and the optional log proof bundle."""
    payload, _ = read_statement(subject, cls)
    return payload, [read_envelope(path) for path in approval_paths], _read_bundle(log_bundle)


@app.command("provision")
@handle_errors
def provision(
    folder: DeviceDir,
    agreement: Annotated[Path, typer.Option(help="Agreement file to write into the device.")],
    manufacturer_key: Annotated[Path, typer.Option(help="Manufacturer private key (.pem).")],
    device_id: Annotated[str, typer.Option(help="Unique device id.")],
    model: Annotated[str, typer.Option(help="Device model name.")] = "flexheg-emulated",
    json: JsonOption = False,
) -> None:
    """Assemble a device: write the agreement, create and certify its identity key."""
    agreement_payload, _ = read_statement(agreement, Agreement)
    device = Device.provision(
        folder,
        agreement_payload=agreement_payload,
        manufacturer_key=load_signing_key(manufacturer_key),
        device_id=device_id,
        model=model,
    )
    emit({"ok": True, **device.status()}, as_json=json, text=f"provisioned {device_id} in {folder}")


@app.command("install")
@handle_errors
def install(
    folder: DeviceDir,
    update: Annotated[Path, typer.Argument(help="Update file.")],
    approval: Approvals,
    log_bundle: LogBundleOption = None,
    json: JsonOption = False,
) -> None:
    """Install a ruleset update with its approvals."""
    payload, approvals, bundle = _signed_inputs(update, RulesetUpdate, approval, log_bundle)
    result = Device(folder).install(payload, approvals, log_bundle=bundle)
    emit(
        {
            "ok": True,
            "version": result.version,
            "digest": result.digest,
            "not_after": result.not_after,
            "approvals": result.approvals.to_dict(),
        },
        as_json=json,
        text=f"installed version {result.version}: {result.approvals.describe()}",
    )


@app.command("extend")
@handle_errors
def extend(
    folder: DeviceDir,
    extension: Annotated[Path, typer.Argument(help="Extension file.")],
    approval: Approvals,
    log_bundle: LogBundleOption = None,
    json: JsonOption = False,
) -> None:
    """Extend the installed update's lifetime with approvals."""
    payload, approvals, bundle = _signed_inputs(extension, LifetimeExtension, approval, log_bundle)
    result = Device(folder).extend(payload, approvals, log_bundle=bundle)
    emit(
        {
            "ok": True,
            "version": result.version,
            "serial": result.serial,
            "not_after": result.not_after,
            "approvals": result.approvals.to_dict(),
        },
        as_json=json,
        text=f"extended version {result.version} to {result.not_after}: {result.approvals.describe()}",
    )


@app.command("change-approvers")
@handle_errors
def change_approvers(
    folder: DeviceDir,
    change: Annotated[Path, typer.Argument(help="Approver-set change file.")],
    approval: Approvals,
    log_bundle: LogBundleOption = None,
    json: JsonOption = False,
) -> None:
    """Replace the approver set; needs the change-approvers policy of the old and the new set."""
    payload, approvals, bundle = _signed_inputs(change, ApproverSetChange, approval, log_bundle)
    result = Device(folder).change_approvers(payload, approvals, log_bundle=bundle)
    emit(
        {
            "ok": True,
            "epoch": result.epoch,
            "approvers": list(result.approvers),
            "old_set": result.old_set.to_dict(),
            "new_set": result.new_set.to_dict(),
        },
        as_json=json,
        text=f"approver set is now epoch {result.epoch}: {', '.join(result.approvers)}",
    )


@app.command("license")
@handle_errors
def license_(
    folder: DeviceDir,
    license_file: Annotated[
        Path, typer.Argument(help="Operating license (DSSE envelope) from a licensing state.")
    ],
    log_bundle: LogBundleOption = None,
    json: JsonOption = False,
) -> None:
    """Install an operating license signed by one of the agreement's licensing states."""
    envelope = read_envelope(license_file)
    bundle = _read_bundle(log_bundle)
    granted = Device(folder).install_license(envelope, log_bundle=bundle)
    emit(
        {
            "ok": True,
            "licensing_state": granted.licensing_state,
            "serial": granted.serial,
            "not_before": granted.not_before,
            "not_after": granted.not_after,
        },
        as_json=json,
        text=f"installed license {granted.serial} from {granted.licensing_state} until {granted.not_after}",
    )


@app.command("admit")
@handle_errors
def admit(
    folder: DeviceDir,
    workload: Annotated[Path, typer.Argument(help="Workload descriptor (JSON).")],
    json: JsonOption = False,
) -> None:
    """Ask the device to admit a workload; exit 1 if the active rules deny it."""
    facts = parse_workload(read_json(workload, what="workload descriptor"), what=str(workload))
    result = Device(folder).admit(facts)
    document = {
        "ok": result.decision.allowed,
        "mode": result.mode.value,
        "run_id": result.run_id,
        "run_flop_total": str(result.flop_total),
        **result.decision.to_dict(),
    }
    if not result.decision.allowed:
        document["reason_code"] = result.reason_code
    verdict = "admitted" if result.decision.allowed else "denied"
    emit(document, as_json=json, text=f"{verdict} by rule {result.decision.rule}: {result.decision.reason}")
    if not result.decision.allowed:
        raise typer.Exit(EXIT_REJECTED)


@app.command("attest")
@handle_errors
def attest(
    folder: DeviceDir,
    nonce: Annotated[str, typer.Option(help="The verifier's nonce (hex).")],
    out: Annotated[Path, typer.Option(help="Evidence file to write.")],
    json: JsonOption = False,
) -> None:
    """Sign evidence of the device's state for a verifier's nonce."""
    device = Device(folder)
    with _open_output(out) as handle:
        evidence = device.attest(nonce)
        bundle = EvidenceBundle(evidence, device.certificate())
        handle.write(dumps(bundle.to_dict(), indent=2, sort_keys=True) + "\n")
    emit({"ok": True, "evidence": str(out)}, as_json=json, text=f"wrote evidence to {out}")


@app.command("status")
@handle_errors
def status(folder: DeviceDir, json: JsonOption = False) -> None:
    """Show the device's mode, installed version, expiry and counters."""
    document = Device(folder).status()
    if document.get("disabled"):
        # One JSON document per command: the rejection carries the reason the device recorded.
        raise Rejected(
            Reason.DEVICE_DISABLED,
            f"the device is disabled: {document['reason']}",
            expected="an enabled device",
            actual=f"disabled: {document['reason']}",
        )
    emit(document, as_json=json)


@app.command("power-log")
@handle_errors
def power_log(
    folder: DeviceDir,
    out: Annotated[Path, typer.Option(help="File to write the power log entries to.")],
    json: JsonOption = False,
) -> None:
    """Export the hash-chained power log for an inspector."""
    with _open_output(out) as handle:
        entries = Device(folder).power_log()
        handle.write(dumps(entries, indent=2) + "\n")
    emit({"ok": True, "entries": len(entries), "out": str(out)}, as_json=json)
