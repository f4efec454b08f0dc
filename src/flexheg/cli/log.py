"""``flexheg log``: run a transparency log and its witnesses from the command line.

A log directory contains ``log.sqlite`` (entries, subtree hashes, checkpoints), ``log-key.pem`` (the
log's Ed25519 key, mode 0600) and ``log.vkey`` (its C2SP verifier key, to give to devices). A
witness directory contains ``witness.sqlite``, ``witness-key.pem``, ``witness.vkey`` and ``logs``
(the verifier keys of the logs it witnesses, one a line).

NOTE: keys are plain files on the host, as everywhere in the emulator.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from flexheg.cli._files import read_bytes
from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.errors import InputError
from flexheg.translog.log import TransparencyLog
from flexheg.translog.storage import SQLiteLogStorage, SQLiteWitnessStorage
from flexheg.translog.witness import Witness, collect_cosignatures, request_cosignature
from flexheg.wire.checkpoint import NoteSigner, NoteVerifier, check_key_name

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)
witness_app = typer.Typer(no_args_is_help=True)
app.add_typer(witness_app, name="witness", help="Run a witness that cosigns log checkpoints.")

LogDir = Annotated[Path, typer.Argument(help="Log directory made by 'flexheg log init'.")]
WitnessDir = Annotated[Path, typer.Argument(help="Witness directory made by 'flexheg log witness init'.")]


def _emit_plain(document: dict[str, object], *, as_json: bool, text: str) -> None:
    """Print ``text`` unwrapped (keys and notes must stay copyable), or the JSON document."""
    if as_json:
        emit(document, as_json=True)
    else:
        typer.echo(text)


def _write_private_key(path: Path, pem: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _new_key_dir(directory: Path, stem: str, name: str) -> NoteSigner:

    check_key_name(name, what="--name")
    if (directory / f"{stem}.sqlite").exists():
        raise InputError(f"{directory}: already contains a {stem}; choose another directory")
    directory.mkdir(parents=True, exist_ok=True)
    signer = NoteSigner.generate(name)
    pem = signer.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    _write_private_key(directory / f"{stem}-key.pem", pem)
    (directory / "name").write_text(name + "\n", encoding="utf-8")
    return signer


def _load_signer(directory: Path, stem: str) -> NoteSigner:

    if not (directory / f"{stem}.sqlite").exists():
        raise InputError(f"{directory}: no {stem} here; create one with 'flexheg log init' first")
    name = read_bytes(directory / "name", what=f"{stem} name").decode("utf-8").strip()
    pem = read_bytes(directory / f"{stem}-key.pem", what=f"{stem} key")
    return NoteSigner.from_pem(name, pem, what=str(directory / f"{stem}-key.pem"))


def open_log(directory: Path) -> TransparencyLog:
    """Open the log in ``directory``."""

    signer = _load_signer(directory, "log")
    return TransparencyLog(SQLiteLogStorage(directory / "log.sqlite"), signer)


def open_witness(directory: Path) -> Witness:
    """Open the witness in ``directory``."""

    signer = _load_signer(directory, "witness")
    logs_text = read_bytes(directory / "logs", what="trusted logs").decode("utf-8")
    logs = {}
    for number, line in enumerate(logs_text.splitlines(), start=1):
        if line.strip():
            verifier = NoteVerifier.from_vkey(line, what=f"{directory / 'logs'} line {number}")
            logs[verifier.name] = verifier
    return Witness(SQLiteWitnessStorage(directory / "witness.sqlite"), signer, logs)


@app.command("init")
@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the log in.")],
    name: Annotated[str, typer.Option(help="Log origin, a schema-less URL such as log.example/a.")],
    json: JsonOption = False,
) -> None:
    """Create an empty log with a new Ed25519 key."""

    signer = _new_key_dir(directory, "log", name)
    storage = SQLiteLogStorage(directory / "log.sqlite")
    storage.set_origin(name)
    storage.close()
    vkey = signer.verifier().to_vkey()
    (directory / "log.vkey").write_text(vkey + "\n", encoding="utf-8")
    _emit_plain(
        {"ok": True, "origin": name, "vkey": vkey},
        as_json=json,
        text=f"created log {name} in {directory}\nverifier key: {vkey}",
    )


@app.command("append")
@handle_errors
def append(
    directory: LogDir,
    files: Annotated[list[Path], typer.Argument(help="Files whose bytes to append, one entry each.")],
    json: JsonOption = False,
) -> None:
    """Append entries durably; print each one's index."""
    log = open_log(directory)
    try:
        appended = log.append([read_bytes(path, what="entry") for path in files])
        size = log.size()
    finally:
        log.close()
    rows = [
        {"file": str(path), "index": a.index, "duplicate": a.duplicate}
        for path, a in zip(files, appended, strict=True)
    ]
    text = "\n".join(
        f"{r['index']}\t{r['file']}" + ("\t(already logged)" if r["duplicate"] else "") for r in rows
    )
    emit({"ok": True, "entries": rows, "size": size}, as_json=json, text=text)


@app.command("checkpoint")
@handle_errors
def checkpoint(
    directory: LogDir,
    witness: Annotated[
        list[Path] | None,
        typer.Option(help="Witness directory to ask for a cosignature (repeat for several)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Sign a checkpoint of the current tree and collect cosignatures from local witnesses."""

    log = open_log(directory)
    failures: dict[str, str] = {}
    try:
        signed = log.sign_checkpoint()
        if witness:
            witnesses = [open_witness(path) for path in witness]
            cosignatures, failures = collect_cosignatures(
                signed, witnesses, consistency_proof=log.consistency_proof, now=int(time.time())
            )
            signed = log.add_cosignatures(signed.size, cosignatures)
    finally:
        log.close()
    note = signed.to_bytes().decode("utf-8")
    _emit_plain(
        {"ok": True, "size": signed.size, "checkpoint": note, "witness_failures": failures},
        as_json=json,
        text=note.rstrip("\n"),
    )


@app.command("prove")
@handle_errors
def prove(
    directory: LogDir,
    entry: Annotated[list[Path], typer.Option(help="Entry file to prove (repeat for several).")],
    out: Annotated[Path, typer.Option(help="Where to write the bundle JSON.")],
    newest_seen_size: Annotated[
        int | None, typer.Option(help="Tree size of the newest checkpoint the device has stored.")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="Tree size of the checkpoint to prove under (default newest).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Write the proof bundle that a device checks before it accepts the entries."""
    log = open_log(directory)
    try:
        bundle = log.bundle(
            [read_bytes(path, what="entry") for path in entry], newest_seen_size=newest_seen_size, size=size
        )
    finally:
        log.close()
    out.write_bytes(bundle.to_json())
    indices = [p.index for p in bundle.inclusion]
    emit(
        {"ok": True, "bundle": str(out), "size": bundle.checkpoint.size, "indices": indices},
        as_json=json,
        text=f"wrote {out}: {len(indices)} entries under checkpoint size {bundle.checkpoint.size}",
    )


@app.command("serve")
@handle_errors
def serve(
    directory: LogDir,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8470,
    witness: Annotated[Path | None, typer.Option(help="Also serve this witness at /add-checkpoint.")] = None,
    json: JsonOption = False,
) -> None:
    """Serve the log's HTTP API (and optionally a witness) until interrupted."""
    import uvicorn  # noqa: PLC0415 - heavy, needed only by this command
    from fastapi import FastAPI  # noqa: PLC0415

    from flexheg.translog.http import create_router  # noqa: PLC0415

    log = open_log(directory)
    served_witness = open_witness(witness) if witness is not None else None
    app_ = FastAPI(title="flexheg transparency log")
    app_.include_router(create_router(log, witness=served_witness))
    logger.info("serving log %s on %s:%d", log.origin, host, port)
    del json
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@witness_app.command("init")
@handle_errors
def witness_init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the witness in.")],
    name: Annotated[str, typer.Option(help="Witness name, a schema-less URL.")],
    log_vkey: Annotated[
        list[Path], typer.Option(help="A log's verifier key file (log.vkey); repeat for several.")
    ],
    json: JsonOption = False,
) -> None:
    """Create a witness with a new key that trusts the given logs."""

    vkeys = [read_bytes(path, what="log verifier key").decode("utf-8").strip() for path in log_vkey]
    for path, vkey in zip(log_vkey, vkeys, strict=True):
        NoteVerifier.from_vkey(vkey, what=str(path))
    signer = _new_key_dir(directory, "witness", name)
    SQLiteWitnessStorage(directory / "witness.sqlite").close()
    (directory / "logs").write_text("".join(v + "\n" for v in vkeys), encoding="utf-8")
    vkey = signer.cosignature_verifier().to_vkey()
    (directory / "witness.vkey").write_text(vkey + "\n", encoding="utf-8")
    _emit_plain(
        {"ok": True, "name": name, "vkey": vkey},
        as_json=json,
        text=f"created witness {name} in {directory}\nverifier key: {vkey}",
    )


@witness_app.command("cosign")
@handle_errors
def witness_cosign(
    directory: WitnessDir,
    log_dir: Annotated[Path, typer.Argument(help="Log directory whose newest checkpoint to cosign.")],
    json: JsonOption = False,
) -> None:
    """Cosign the log's newest checkpoint if it extends what this witness cosigned before."""

    log = open_log(log_dir)
    witness = open_witness(directory)
    try:
        newest = log.checkpoint()
        cosignature = request_cosignature(
            newest, witness, consistency_proof=log.consistency_proof, now=int(time.time())
        )
        updated = log.add_cosignatures(newest.size, [cosignature])
    finally:
        log.close()
    emit(
        {"ok": True, "size": updated.size, "cosignature": cosignature.line().rstrip("\n")},
        as_json=json,
        text=f"{witness.name} cosigned {updated.origin}@{updated.size}",
    )
