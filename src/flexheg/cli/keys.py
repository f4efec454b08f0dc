"""``flexheg key``: generate Ed25519 key pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.wire import SigningKey, write_key_pair

app = typer.Typer(no_args_is_help=True)


@app.command("generate")
@handle_errors
def generate(
    stem: Annotated[Path, typer.Argument(help="Path without suffix; writes STEM.pem and STEM.pub.json.")],
    json: JsonOption = False,
) -> None:
    """Generate an Ed25519 key pair (private key file mode 0600)."""
    key = SigningKey.generate()
    private_path, public_path = write_key_pair(key, stem)
    emit(
        {"ok": True, "keyid": key.keyid, "private": str(private_path), "public": str(public_path)},
        as_json=json,
        text=f"wrote {private_path} and {public_path} (key id {key.keyid[:16]}…)",
    )
