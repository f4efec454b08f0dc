"""``flexheg serve``: run the HTTP server (registry API, and the transparency log if asked)."""

# Commands import heavy libraries inside their bodies so that 'flexheg --help' stays fast.
# ruff: noqa: PLC0415

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from flexheg.cli._output import configure_logging, handle_errors
from flexheg.errors import InputError

logger = logging.getLogger(__name__)


@handle_errors
def command(
    db: Annotated[
        str, typer.Option("--db", envvar="FLEXHEG_REGISTRY_URL", help="Registry database URL.")
    ] = "sqlite:///registry.db",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    license_key: Annotated[
        list[str] | None,
        typer.Option(help="STATE=KEY.pem: sign operating licenses for STATE with this key (repeat)."),
    ] = None,
    agreement: Annotated[str | None, typer.Option(help="Agreement digest that licenses name.")] = None,
    attestation_deadline: Annotated[str, typer.Option(help="Attestation deadline, e.g. 7d.")] = "7d",
    location_tolerance_km: Annotated[
        float, typer.Option(help="Distance from the registered location that counts as away, in km.")
    ] = 50.0,
    power_off_threshold: Annotated[
        str, typer.Option(help="Power-off periods longer than this need an explanation, e.g. 1h.")
    ] = "1h",
    license_validity: Annotated[str, typer.Option(help="Validity of issued licenses.")] = "30d",
    translog_dir: Annotated[
        Path | None,
        typer.Option(
            help="Serve the transparency log in this folder (made by 'flexheg log init') under /v1/log."
        ),
    ] = None,
    translog_name: Annotated[
        str | None, typer.Option(help="The log's key name (origin); read from the log folder by default.")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", help="Threads that serve blocking requests.")] = 40,
) -> None:
    """Serve the registry API over HTTP until interrupted."""
    import uvicorn

    from flexheg.registry import RegistryConfig
    from flexheg.server import ServerConfig, TranslogOptions, create_app
    from flexheg.wire import check_digest, load_signing_key, parse_duration

    # A service logs its start, stop and caught errors, so INFO is the least it shows.
    if logging.getLogger("flexheg").getEffectiveLevel() > logging.INFO:
        configure_logging(1)
    keys = {}
    for item in license_key or []:
        state, sep, path = item.partition("=")
        if not sep or not state:
            raise InputError(f"--license-key {item!r} is invalid; write STATE=KEY.pem")
        keys[state] = load_signing_key(Path(path))
    translog = None
    if translog_dir is not None:
        if translog_name is None:
            # 'flexheg log init' writes the log's name next to its key.
            name_file = translog_dir / "name"
            try:
                translog_name = name_file.read_text(encoding="utf-8").strip()
            except OSError:
                raise InputError(
                    f"{name_file}: cannot read the log's name; pass --translog-name or a folder "
                    "made by 'flexheg log init'"
                ) from None
        translog = TranslogOptions(translog_dir / "log.sqlite", translog_dir / "log-key.pem", translog_name)
    config = ServerConfig(
        database_url=db,
        registry=RegistryConfig(
            attestation_deadline=parse_duration(attestation_deadline),
            location_tolerance_km=location_tolerance_km,
            power_off_threshold=parse_duration(power_off_threshold),
            license_validity=parse_duration(license_validity),
        ),
        license_keys=keys,
        agreement_digest=None if agreement is None else check_digest(agreement, what="--agreement"),
        translog=translog,
        thread_limit=threads,
    )
    app = create_app(config)
    logger.info("serving on http://%s:%d", host, port)
    # log_config=None keeps the logging that the flexheg CLI configured.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
