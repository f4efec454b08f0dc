"""``flexheg landmark``: run landmark servers and link emulators, prove and judge locations."""

from __future__ import annotations

import json as json_module
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Protocol

import typer

from flexheg.cli._files import read_envelope, read_json, write_envelope
from flexheg.cli._output import JsonOption, configure_logging, emit, handle_errors
from flexheg.device.location import (
    SPEED_OF_LIGHT_M_PER_S,
    GeoPoint,
    Landmark,
    LocationPolicy,
    LocationProof,
    decide_location,
)
from flexheg.errors import InputError, Rejected
from flexheg.location import (
    LandmarkServer,
    LinkEmulator,
    parse_address,
    propagation_delay_ns,
    prove_location,
)
from flexheg.wire import (
    SigningKey,
    load_public_key,
    load_signing_key,
    parse_time,
    write_key_pair,
)

app = typer.Typer(no_args_is_help=True)

_DEFAULT_LISTEN = "127.0.0.1:0"


def _read_policy(path: Path) -> LocationPolicy:
    return LocationPolicy.from_dict(read_json(path, what="location policy"), where=str(path))


def _print_ready(document: dict[str, object], *, as_json: bool) -> None:
    """Print the startup line that scripts wait for, then flush so a pipe reader sees it."""
    if as_json:
        sys.stdout.write(json_module.dumps(document, sort_keys=True) + "\n")
    else:
        sys.stdout.write(" ".join(f"{key}={value}" for key, value in document.items()) + "\n")
    sys.stdout.flush()


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def _stop_on_signals(service: _Stoppable) -> None:
    """Stop ``service`` cleanly on SIGTERM or SIGINT, so that it logs its stop."""

    def handler(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        service.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@app.command("keygen")
@handle_errors
def keygen(
    stem: Annotated[
        Path,
        typer.Argument(help="Path without suffix; writes STEM.pem, STEM.pub.json, STEM.landmark.json."),
    ],
    landmark_id: Annotated[str, typer.Option("--id", help="Landmark id, e.g. geneva-1.")],
    latitude: Annotated[float, typer.Option(help="Latitude of the landmark in degrees (north +).")],
    longitude: Annotated[float, typer.Option(help="Longitude of the landmark in degrees (east +).")],
    max_processing_us: Annotated[
        int, typer.Option(help="Largest processing time, in microseconds, verifiers accept.")
    ] = 5000,
    json: JsonOption = False,
) -> None:
    """Generate a landmark key pair and the landmark's entry for a location policy."""
    key = SigningKey.generate()
    landmark = Landmark(
        landmark_id, key.public, GeoPoint.from_degrees(latitude, longitude), max_processing_us
    )
    entry_path = stem.with_name(stem.name + ".landmark.json")
    if entry_path.exists():
        raise InputError(f"{entry_path}: already exists; choose another name or delete it first")
    private_path, public_path = write_key_pair(key, stem)
    entry_path.write_text(json_module.dumps(landmark.to_dict(), indent=2) + "\n", encoding="utf-8")
    emit(
        {
            "ok": True,
            "landmark": landmark_id,
            "keyid": key.keyid,
            "private": str(private_path),
            "public": str(public_path),
            "entry": str(entry_path),
        },
        as_json=json,
        text=f"wrote {private_path}, {public_path} and {entry_path} (landmark {landmark_id})",
    )


@app.command("serve")
@handle_errors
def serve(
    key: Annotated[Path, typer.Option(help="The landmark's private key (.pem).")],
    landmark_id: Annotated[str, typer.Option("--id", help="Landmark id that challenges must name.")],
    listen: Annotated[
        str, typer.Option(help="UDP HOST:PORT to listen on; port 0 picks a free port.")
    ] = _DEFAULT_LISTEN,
    processing_us: Annotated[
        int, typer.Option(help="Microseconds to hold each response; declared in the response.")
    ] = 1000,
    json: JsonOption = False,
) -> None:
    """Respond to location challenges until SIGTERM or Ctrl-C. Prints one line with the address."""
    host, port = _parse_listen(listen)
    server = LandmarkServer(
        load_signing_key(key), landmark_id, host=host, port=port, processing_us=processing_us
    )
    _stop_on_signals(server)
    bound_host, bound_port = server.address
    _print_ready(
        {"ok": True, "landmark": landmark_id, "address": f"{bound_host}:{bound_port}"},
        as_json=json,
    )
    server.serve_forever()


def _parse_listen(text: str) -> tuple[str, int]:
    host, separator, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not separator or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise InputError(f"--listen {text!r} is invalid; write HOST:PORT, e.g. 127.0.0.1:4770")
    return host, int(port_text)


@app.command("link")
@handle_errors
def link(
    upstream: Annotated[str, typer.Option(help="HOST:PORT to forward datagrams to.")],
    distance_km: Annotated[float, typer.Option(help="Length of the emulated link in kilometres.")],
    listen: Annotated[
        str, typer.Option(help="UDP HOST:PORT to listen on; port 0 picks a free port.")
    ] = _DEFAULT_LISTEN,
    signal_speed: Annotated[
        int, typer.Option(help="Signal speed on the emulated link in metres per second.")
    ] = SPEED_OF_LIGHT_M_PER_S,
    json: JsonOption = False,
) -> None:
    """Relay UDP datagrams, delaying each by the propagation time of a link of this length."""
    if not 0 <= distance_km <= 40_075:
        raise InputError(
            f"--distance-km {distance_km} is invalid; give 0 to 40075 km (the Earth's circumference)"
        )
    host, port = _parse_listen(listen)
    delay_ns = propagation_delay_ns(round(distance_km * 1000), signal_speed)
    emulator = LinkEmulator(parse_address(upstream), delay_ns, host=host, port=port)
    _stop_on_signals(emulator)
    bound_host, bound_port = emulator.address
    _print_ready(
        {"ok": True, "address": f"{bound_host}:{bound_port}", "one_way_delay_ns": delay_ns},
        as_json=json,
    )
    emulator.serve_forever()


@app.command("prove")
@handle_errors
def prove(
    policy: Annotated[Path, typer.Option(help="Location policy JSON with the trusted landmarks.")],
    landmark_id: Annotated[str, typer.Option("--landmark", help="Id of the landmark to challenge.")],
    address: Annotated[
        str, typer.Option(help="UDP HOST:PORT of the landmark (or of a relay in front of it).")
    ],
    device_key: Annotated[Path, typer.Option(help="Device identity private key (.pem).")],
    out: Annotated[Path | None, typer.Option(help="Write the signed proof envelope here.")] = None,
    rounds: Annotated[int, typer.Option(help="Challenges to send; the fastest counts.")] = 5,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each response.")] = 1.0,
    signal_speed: Annotated[
        int, typer.Option(help="Fastest signal speed assumed, in metres per second.")
    ] = SPEED_OF_LIGHT_M_PER_S,
    json: JsonOption = False,
) -> None:
    """Measure the round trip to a landmark and print a location proof signed by the device key."""
    location_policy = _read_policy(policy)
    landmark = location_policy.landmark(landmark_id)
    envelope = prove_location(
        parse_address(address),
        landmark,
        sign_key=load_signing_key(device_key),
        clock_ns=time.monotonic_ns,
        now=int(time.time()),
        rounds=rounds,
        timeout_s=timeout,
        signal_speed_m_per_s=signal_speed,
        max_clock_skew_s=location_policy.max_clock_skew_s,
    )
    if out is not None:
        write_envelope(out, envelope)
    proof = envelope.statement(LocationProof, what="location proof")
    emit(
        {
            "ok": True,
            "landmark": proof.landmark,
            "rtt_us": proof.rtt_us,
            "processing_us": proof.processing_us,
            "distance_bound_m": proof.distance_bound_m,
            "time": proof.time,
            "proof": envelope.to_dict(),
        },
        as_json=json,
        text=(
            f"landmark {proof.landmark}: round trip {proof.rtt_us} us, processing "
            f"{proof.processing_us} us, within {proof.distance_bound_m / 1000:.1f} km"
        ),
    )


@app.command("locate")
@handle_errors
def locate(
    policy: Annotated[Path, typer.Option(help="Location policy JSON: landmarks, regions, limits.")],
    device_pub: Annotated[Path, typer.Option(help="Device identity public key (.pub.json).")],
    proofs: Annotated[list[Path], typer.Argument(help="Signed location proof files.")],
    now: Annotated[
        str | None, typer.Option(help="Time to judge at (RFC 3339); default: the current time.")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Require this region; exit 1 unless provably inside.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Judge stored location proofs: print the rule facts and the regions proven to contain them."""
    location_policy = _read_policy(policy)
    if region is not None:
        location_policy.region(region)
    status = decide_location(
        [read_envelope(path) for path in proofs],
        device_key=load_public_key(device_pub),
        policy=location_policy,
        now=parse_time(now) if now is not None else int(time.time()),
    )
    if region is not None:
        status.require_region(region)
    elif status.reason is not None:
        raise Rejected(status.reason, status.message)
    emit(
        {
            "ok": True,
            **status.facts(),
            "regions": list(status.regions),
            "proofs_used": len(status.used),
            "proofs_rejected": [
                {"index": item.index, "reason": item.reason.value, "message": item.message}
                for item in status.rejected
            ],
        },
        as_json=json,
    )


def main() -> None:
    """Run this command group alone, as ``python -m flexheg.cli.landmark``, with -v for logs."""
    arguments = sys.argv[1:]
    verbosity = 0
    while arguments and arguments[0] in ("-v", "-vv"):
        verbosity += len(arguments.pop(0)) - 1
    configure_logging(verbosity)
    app(args=arguments, prog_name="flexheg landmark")


if __name__ == "__main__":
    main()
