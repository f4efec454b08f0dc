"""Reading and writing the files that commands exchange."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flexheg.errors import InputError
from flexheg.wire import Envelope, Statement, loads_strict, parse_statement
from flexheg.wire._statement import S


def read_bytes(path: Path, *, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; pass the {what} file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} file: {exc.strerror}") from None


def read_statement(path: Path, cls: type[S]) -> tuple[bytes, S]:
    """Read a statement file (canonical JSON bytes) and return its bytes and parsed form."""
    data = read_bytes(path, what=cls.TYPE.rsplit("/", 2)[1])
    try:
        return data, parse_statement(data, cls, what=str(path))
    except InputError as exc:
        stripped = data.rstrip(b"\r\n")
        if stripped != data and _parses(stripped, cls):
            raise InputError(
                f"{path}: the file ends with a newline that is not part of the signed statement; "
                "remove it, or use the file exactly as flexheg wrote it (digests cover every byte)"
            ) from None
        raise InputError(f"{exc}; pass the {cls.TYPE} file exactly as flexheg wrote it") from None


def _parses(data: bytes, cls: type[S]) -> bool:
    try:
        parse_statement(data, cls, what="statement")
    except InputError:
        return False
    return True


def write_statement(path: Path, statement: Statement) -> bytes:
    data = statement.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def read_envelope(path: Path) -> Envelope:
    return Envelope.from_json(read_bytes(path, what="signed envelope"), what=str(path))


def write_envelope(path: Path, envelope: Envelope) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(envelope.to_json())


def read_json(path: Path, *, what: str) -> Any:
    return loads_strict(read_bytes(path, what=what), what=str(path))


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
