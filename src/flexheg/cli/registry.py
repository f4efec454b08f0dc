"""``flexheg registry``: the registry service's operations from the command line.

Every command opens the registry named by ``--db`` (or ``FLEXHEG_REGISTRY_URL``), applying the
schema migrations first, and reads the clock once unless ``--at`` gives the time.
"""

# Commands import heavy libraries inside their bodies so that 'flexheg --help' stays fast.
# ruff: noqa: PLC0415

from __future__ import annotations

import json as jsonlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flexheg.cli._files import read_bytes
from flexheg.cli._output import EXIT_REJECTED, JsonOption, emit, handle_errors
from flexheg.errors import InputError

if TYPE_CHECKING:
    from flexheg.registry import Registry

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)
token_app = typer.Typer(no_args_is_help=True)
party_app = typer.Typer(no_args_is_help=True)
oversight_app = typer.Typer(no_args_is_help=True)
app.add_typer(token_app, name="token", help="Issue and revoke API bearer tokens.")
app.add_typer(party_app, name="party", help="Register supply-chain parties' signing keys.")
app.add_typer(oversight_app, name="oversight", help="Production oversight draws and detection odds.")

DEFAULT_URL = "sqlite:///registry.db"
DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="FLEXHEG_REGISTRY_URL",
        help="Registry database URL: sqlite:///PATH or postgresql://USER@HOST/DB.",
    ),
]
AtOption = Annotated[str | None, typer.Option("--at", help="Act at this RFC 3339 time instead of now.")]
ActorOption = Annotated[str, typer.Option("--actor", help="Principal recorded as the author of the change.")]


def _now(at: str | None) -> int:
    from flexheg.wire import parse_time

    return parse_time(at) if at is not None else int(time.time())


@contextmanager
def _open(url: str) -> Iterator[Registry]:
    from sqlalchemy.exc import OperationalError

    from flexheg.registry import Registry

    try:
        registry = Registry.open(url)
    except OperationalError as exc:
        raise InputError(
            f"--db {url}: cannot open the registry database ({exc.orig}); check that the folder exists "
            "or that the server is running"
        ) from None
    try:
        yield registry
    finally:
        registry.close()


def _public_key(path: Path) -> Any:
    from flexheg.wire import load_public_key

    return load_public_key(path)


def _envelope(path: Path, what: str) -> Any:
    from flexheg.wire import Envelope

    return Envelope.from_json(read_bytes(path, what=what), what=str(path))


@app.command("init")
@handle_errors
def init(db: DbOption = DEFAULT_URL, json: JsonOption = False) -> None:
    """Create or upgrade the registry database."""
    with _open(db) as registry:
        emit(
            {"ok": True, "database": registry.db.dialect},
            as_json=json,
            text=f"registry ready ({registry.db.dialect})",
        )


@token_app.command("issue")
@handle_errors
def token_issue(
    name: Annotated[str, typer.Argument(help="Principal name; for owners, the owner name.")],
    role: Annotated[str, typer.Option(help="international-body, inspector, owner or licensing-state.")],
    replace: Annotated[bool, typer.Option(help="Replace the token of an existing principal.")] = False,
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    json: JsonOption = False,
) -> None:
    """Create a principal and print its bearer token (shown once, stored as a digest)."""
    with _open(db) as registry:
        token = registry.issue_token(name, role=role, actor=actor, now=_now(None), replace=replace)
    emit({"name": name, "role": role, "token": token}, as_json=json, text=token)


@token_app.command("revoke")
@handle_errors
def token_revoke(
    name: str, db: DbOption = DEFAULT_URL, actor: ActorOption = "cli", json: JsonOption = False
) -> None:
    """Revoke a principal's token."""
    with _open(db) as registry:
        registry.revoke_token(name, actor=actor)
    emit({"name": name, "revoked": True}, as_json=json, text=f"revoked {name}")


@app.command("register")
@handle_errors
def register(
    entity_id: Annotated[str, typer.Argument(help="Entity id.")],
    kind: Annotated[str, typer.Option(help="device, chip, data-center, fab or equipment.")],
    owner: Annotated[str, typer.Option(help="Owner name.")],
    latitude: Annotated[float, typer.Option(help="Registered latitude in degrees.")],
    longitude: Annotated[float, typer.Option(help="Registered longitude in degrees.")],
    region: Annotated[str, typer.Option(help="Region name, e.g. a country code.")],
    risk_weight: Annotated[int, typer.Option(help="Inspection weight, 1 to 100.")] = 1,
    site: Annotated[str | None, typer.Option(help="Hosting data center or operating fab.")] = None,
    identity_key: Annotated[Path | None, typer.Option(help="Device identity key (.pub.json).")] = None,
    manufacturer: Annotated[str | None, typer.Option(help="Registered manufacturer party.")] = None,
    certificate: Annotated[Path | None, typer.Option(help="Manufacturer certificate envelope.")] = None,
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Register one entity."""
    from flexheg.registry import NewEntity

    request = NewEntity.build(
        id=entity_id,
        kind=kind,
        owner=owner,
        latitude=latitude,
        longitude=longitude,
        region=region,
        risk_weight=risk_weight,
        site_id=site,
        identity_key=None if identity_key is None else _public_key(identity_key),
        manufacturer=manufacturer,
        certificate=None if certificate is None else _envelope(certificate, "certificate"),
    )
    with _open(db) as registry:
        emit(registry.register(request, actor=actor, now=_now(at)), as_json=json)


@app.command("show")
@handle_errors
def show(entity_id: str, db: DbOption = DEFAULT_URL, json: JsonOption = False) -> None:
    """Show one entity."""
    with _open(db) as registry:
        emit(registry.get(entity_id), as_json=json)


@app.command("list")
@handle_errors
def list_entities(
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, 1 to 10000.")] = 100,
    db: DbOption = DEFAULT_URL,
    json: JsonOption = False,
) -> None:
    """List entities by id."""
    from rich.table import Table

    with _open(db) as registry:
        rows = registry.list_entities(kind=kind, owner=owner, status=status, limit=limit)
    table = Table("id", "kind", "owner", "region", "status")
    for row in rows:
        table.add_row(row["id"], row["kind"], row["owner"], row["region"], row["status"])
    emit({"entities": rows}, as_json=json, text=table)


@app.command("history")
@handle_errors
def history(entity_id: str, db: DbOption = DEFAULT_URL, json: JsonOption = False) -> None:
    """Show every recorded change of an entity with its old and new values."""
    with _open(db) as registry:
        changes = registry.history(entity_id)
    lines = [
        f"{c['at']} {c['action']} by {c['actor']}: {c['old']} -> {c['new']} {c['reason']}" for c in changes
    ]
    emit({"changes": changes}, as_json=json, text="\n".join(lines))


@app.command("update")
@handle_errors
def update(
    entity_id: str,
    values: Annotated[list[str], typer.Option("--set", help="FIELD=VALUE (JSON value or text).")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the history.")],
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Change fields of an entity; the old values go into its history."""
    changes: dict[str, Any] = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r} is invalid; write FIELD=VALUE")
        try:
            changes[name] = jsonlib.loads(text)
        except ValueError:
            changes[name] = text
    with _open(db) as registry:
        emit(registry.update(entity_id, changes, actor=actor, reason=reason, now=_now(at)), as_json=json)


@app.command("import")
@handle_errors
def import_census(
    path: Annotated[Path, typer.Argument(help="Census CSV file.")],
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Import a census CSV all-or-nothing; bad rows are listed with their line numbers."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read census file: {exc.strerror}") from None
    columns = (
        TextColumn("importing {task.fields[rows]:,} rows"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with _open(db) as registry, Progress(*columns, disable=json, transient=True) as progress:
        task = progress.add_task("import", total=size, rows=0)

        def advance(rows: int, bytes_read: int) -> None:
            progress.update(task, completed=bytes_read, rows=rows)

        result = registry.import_census(path, actor=actor, now=_now(at), progress=advance)
    emit(result, as_json=json, text=f"imported {result['rows']} rows (import {result['import_id']})")


@app.command("attest")
@handle_errors
def attest(
    device_id: str,
    tick: Annotated[int | None, typer.Option(help="Tick of the appraised evidence; default now.")] = None,
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Record that a device attested."""
    now = _now(at)
    with _open(db) as registry:
        emit(
            registry.record_attestation(device_id, tick=now if tick is None else tick, actor=actor, now=now),
            as_json=json,
        )


@app.command("locate")
@handle_errors
def locate(
    device_id: str,
    latitude: Annotated[float, typer.Option(help="Observed latitude in degrees.")],
    longitude: Annotated[float, typer.Option(help="Observed longitude in degrees.")],
    source: Annotated[str, typer.Option(help="Who observed it: inspector, landmark, ...")] = "inspector",
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Record where a device was observed."""
    with _open(db) as registry:
        emit(
            registry.record_location(
                device_id, latitude=latitude, longitude=longitude, source=source, actor=actor, now=_now(at)
            ),
            as_json=json,
        )


@app.command("draw-round")
@handle_errors
def draw_round(
    seed: Annotated[str, typer.Option(help="Public seed, e.g. a log checkpoint hash.")],
    sample_size: Annotated[int, typer.Option(help="Number of entities to inspect.")],
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Draw a stratified random inspection round from a public seed."""
    with _open(db) as registry:
        drawn = registry.draw_inspection_round(seed=seed, sample_size=sample_size, actor=actor, now=_now(at))
    text = "\n".join(
        [
            f"round {drawn['id']}: {len(drawn['inspections'])} of {drawn['population']}",
            f"selection digest {drawn['selection_digest']}",
        ]
        + [f"  {i['entity_id']} ({i['stratum']})" for i in drawn["inspections"]]
    )
    emit(drawn, as_json=json, text=text)


@app.command("inspect")
@handle_errors
def inspect(
    entity_id: str,
    seen: Annotated[bool, typer.Option("--seen/--missing", help="Whether the entity was found.")],
    seals: Annotated[
        bool | None, typer.Option("--seals-intact/--seals-broken", help="Seal state, if checked.")
    ] = None,
    round_id: Annotated[int | None, typer.Option("--round", help="Inspection round id.")] = None,
    power_log: Annotated[Path | None, typer.Option(help="Power log JSON from the device.")] = None,
    head: Annotated[str | None, typer.Option(help="Power log head from the evidence.")] = None,
    count: Annotated[int | None, typer.Option(help="Power log count from the evidence.")] = None,
    notes: Annotated[str, typer.Option(help="Inspector's notes.")] = "",
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Record an inspection result."""
    from flexheg.wire import loads_strict

    entries = None
    if power_log is not None:
        entries = loads_strict(read_bytes(power_log, what="power log"), what=str(power_log))
        if not isinstance(entries, list):
            raise InputError(f"{power_log}: a power log is a JSON list of entries")
    with _open(db) as registry:
        result = registry.record_inspection(
            entity_id,
            seen=seen,
            seals_intact=seals,
            power_log=entries,
            power_log_head=head,
            power_log_count=count,
            round_id=round_id,
            notes=notes,
            inspector=actor,
            now=_now(at),
        )
    emit(result, as_json=json)


@app.command("explain")
@handle_errors
def explain(
    device_id: str,
    off_tick: Annotated[int, typer.Option(help="Start tick of the power-off period.")],
    explanation: Annotated[str, typer.Option(help="Why the device was off.")],
    owner: Annotated[str, typer.Option(help="The device's owner.")],
    db: DbOption = DEFAULT_URL,
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Record the owner's explanation of a power-off period."""
    with _open(db) as registry:
        emit(
            registry.explain_power_off(
                device_id, off_tick=off_tick, explanation=explanation, owner=owner, now=_now(at)
            ),
            as_json=json,
        )


@party_app.command("add")
@handle_errors
def party_add(
    name: str,
    role: Annotated[
        str,
        typer.Option(
            help="manufacturer, fab, testing-facility, customer, data-center or destruction-facility."
        ),
    ],
    key: Annotated[Path, typer.Option(help="The party's public key (.pub.json).")],
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Register a party's public key."""
    with _open(db) as registry:
        emit(
            registry.register_party(name, role=role, public_key=_public_key(key), actor=actor, now=_now(at)),
            as_json=json,
        )


@app.command("handover")
@handle_errors
def handover(
    envelope: Annotated[Path, typer.Argument(help="Signed hand-over envelope (JSON).")],
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Record a signed custody hand-over; exits 1 if it flags any device."""
    with _open(db) as registry:
        result = registry.record_handover(_envelope(envelope, "hand-over"), actor=actor, now=_now(at))
    emit(result, as_json=json)
    if any(result["problems"].values()):
        raise typer.Exit(EXIT_REJECTED)


@app.command("destroy")
@handle_errors
def destroy(
    envelope: Annotated[Path, typer.Argument(help="Signed destruction record envelope (JSON).")],
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Discard a device on a destruction record signed by a trusted facility."""
    with _open(db) as registry:
        emit(
            registry.record_destruction(_envelope(envelope, "destruction record"), actor=actor, now=_now(at)),
            as_json=json,
        )


@app.command("custody")
@handle_errors
def custody(device_id: str, db: DbOption = DEFAULT_URL, json: JsonOption = False) -> None:
    """Show a device's custody records."""
    with _open(db) as registry:
        records = registry.custody_chain(device_id)
    lines = [
        f"{r['tick']} {r['kind']} {r['from_party']} -> {r['to_party']} ({r['stage']})"
        + (f"  PROBLEM: {r['problem']}" if r["problem"] else "")
        for r in records
    ]
    emit({"records": records}, as_json=json, text="\n".join(lines) or "no custody records")


@app.command("renew")
@handle_errors
def renew(
    device_id: str,
    state: Annotated[str, typer.Option(help="Licensing state name.")],
    key: Annotated[Path, typer.Option(help="The state's private signing key (.pem).")],
    agreement: Annotated[str, typer.Option(help="Agreement digest (sha256:...).")],
    validity: Annotated[str | None, typer.Option(help="License validity, e.g. 30d.")] = None,
    db: DbOption = DEFAULT_URL,
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Renew a device's operating license; exits 1 and prints the reasons when refused."""
    from flexheg.wire import load_signing_key, parse_duration

    signing_key = load_signing_key(key)
    seconds = None if validity is None else parse_duration(validity)
    with _open(db) as registry:
        decision = registry.renew_license(
            device_id,
            licensing_state=state,
            signing_key=signing_key,
            agreement_digest=agreement,
            actor=state,
            now=_now(at),
            validity=seconds,
        )
    if decision["granted"]:
        emit(
            decision,
            as_json=json,
            text=f"license {decision['serial']} issued to {device_id} until {decision['not_after']}",
        )
        return
    emit(
        {"ok": False, **decision},
        as_json=json,
        text=f"[bold red]refused[/bold red] ({', '.join(decision['reasons'])}): {device_id}",
    )
    raise typer.Exit(EXIT_REJECTED)


@app.command("missing")
@handle_errors
def missing(db: DbOption = DEFAULT_URL, at: AtOption = None, json: JsonOption = False) -> None:
    """List devices not attested within the deadline, found missing, or seen away."""
    from rich.table import Table

    with _open(db) as registry:
        rows = registry.missing_report(now=_now(at))
    table = Table("device", "owner", "region", "last attested", "reasons")
    for row in rows:
        table.add_row(
            row["device_id"],
            row["owner"],
            row["region"],
            str(row["last_attested_at"]),
            ", ".join(row["reasons"]),
        )
    emit({"devices": rows}, as_json=json, text=table)


def _rate(text: str) -> Fraction:
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"rate {text!r} is invalid; write a fraction such as 1/1000") from None
    if not 0 <= rate <= 1:
        raise InputError(f"rate {text} must lie between 0 and 1")
    return rate


def _ids(path: Path) -> list[str]:
    lines = read_bytes(path, what="device list").decode("utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _record_draw(
    db: str,
    kind: str,
    seed: str,
    parameters: dict[str, Any],
    result: Any,
    *,
    actor: str,
    at: str | None,
    as_json: bool,
) -> None:
    """Record a production-oversight draw in the registry and print the stored record."""
    with _open(db) as registry:
        emit(
            registry.record_oversight_draw(
                kind, seed=seed, parameters=parameters, result=result, actor=actor, now=_now(at)
            ),
            as_json=as_json,
        )


@oversight_app.command("detection")
@handle_errors
def detection(
    compromised: Annotated[int, typer.Option(help="Number of compromised devices.")],
    rate: Annotated[str, typer.Option(help="Sampling rate as a fraction.")] = "1/1000",
    json: JsonOption = False,
) -> None:
    """Print the probability that at least one compromised device is sampled."""
    from flexheg.registry import detection_report

    report = detection_report(_rate(rate), compromised)
    emit(
        report,
        as_json=json,
        text=f"P(at least one of {compromised} sampled at {rate}) = {report['p_at_least_one_sampled']:.4f}",
    )


@oversight_app.command("extensive-testing")
@handle_errors
def extensive_testing(
    devices: Annotated[Path, typer.Argument(help="File with one finished device id a line.")],
    seed: Annotated[str, typer.Option(help="Public seed.")],
    rate: Annotated[str, typer.Option(help="Sampling rate as a fraction.")] = "1/1000",
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Draw finished devices for extensive testing and record the draw."""
    from flexheg.registry import draw_extensive_testing

    ids = _ids(devices)
    chosen = draw_extensive_testing(seed, ids, _rate(rate))
    _record_draw(
        db,
        "extensive-testing",
        seed,
        {"rate": rate, "devices": len(ids)},
        chosen,
        actor=actor,
        at=at,
        as_json=json,
    )


@oversight_app.command("assign-testing")
@handle_errors
def assign_testing(
    lines: Annotated[
        list[Path],
        typer.Argument(help="One file per production line (ids a line); the file stem names the line."),
    ],
    facility: Annotated[list[str], typer.Option(help="A testing facility (repeat).")],
    seed: Annotated[str, typer.Option(help="Public seed.")],
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Assign each line's guarantee processors at random to testing facilities."""
    from flexheg.registry import assign_to_testing

    production = {path.stem: _ids(path) for path in lines}
    result = assign_to_testing(seed, production, facility)
    _record_draw(
        db,
        "testing-assignment",
        seed,
        {"facilities": sorted(facility), "lines": sorted(production)},
        result,
        actor=actor,
        at=at,
        as_json=json,
    )


@oversight_app.command("allocate")
@handle_errors
def allocate(
    devices: Annotated[Path, typer.Argument(help="File with one device id a line.")],
    order: Annotated[list[str], typer.Option(help="CUSTOMER=COUNT (repeat).")],
    seed: Annotated[str, typer.Option(help="Public seed.")],
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Allocate devices to customer orders at random."""
    from flexheg.registry import allocate_to_customers

    orders = {}
    for item in order:
        name, _, count = item.partition("=")
        if not count.isdigit():
            raise InputError(f"--order {item!r} is invalid; write CUSTOMER=COUNT")
        orders[name] = int(count)
    result = allocate_to_customers(seed, _ids(devices), orders)
    _record_draw(
        db, "customer-allocation", seed, {"orders": orders}, result, actor=actor, at=at, as_json=json
    )


@oversight_app.command("research-samples")
@handle_errors
def research_samples(
    devices: Annotated[Path, typer.Argument(help="File with one device id a line.")],
    researcher: Annotated[list[str], typer.Option(help="A researcher (repeat).")],
    per_researcher: Annotated[int, typer.Option(help="Devices per researcher.")],
    seed: Annotated[str, typer.Option(help="Public seed.")],
    db: DbOption = DEFAULT_URL,
    actor: ActorOption = "cli",
    at: AtOption = None,
    json: JsonOption = False,
) -> None:
    """Draw devices for the security researchers' sample program."""
    from flexheg.registry import draw_research_samples

    result = draw_research_samples(seed, _ids(devices), researcher, per_researcher)
    _record_draw(
        db,
        "research-sample",
        seed,
        {"researchers": sorted(researcher), "per_researcher": per_researcher},
        result,
        actor=actor,
        at=at,
        as_json=json,
    )
