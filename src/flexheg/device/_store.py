"""The sealed store: the device state on disk, integrity-protected and written atomically.

Layout of a device folder:

* ``state.json``: ``{"format": 1, "state": {...}, "mac": "<hex>"}``, where ``mac`` is
  HMAC-SHA256 under the sealing key over the canonical JSON of ``state``;
* ``seal.key``: the 32-byte sealing key (hex);
* ``identity.pem``: the device identity key;
* ``DISABLED``: written by the tamper response, after which the keys are gone.

A write goes to a temporary file in the same folder, is flushed and fsynced, and replaces
``state.json`` with ``os.replace``, followed by an fsync of the folder; a crash at any point
leaves either the old or the new state.

NOTE: the emulator keeps the sealing and identity keys in host files. A real guarantee processor
holds them in tamper-protected storage; here the keys only make tampering with the files
detectable, not impossible, and copying back an older sealed state rolls the device back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from flexheg.errors import InputError
from flexheg.wire import encode

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
SEAL_KEY_FILE = "seal.key"
IDENTITY_FILE = "identity.pem"
DISABLED_FILE = "DISABLED"
LOCK_FILE = ".lock"
FORMAT = 1


class IntegrityError(Exception):
    """The sealed state failed its integrity check."""


def _mac(key: bytes, body: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(body)
    return mac.finalize()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new content."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _fsync_dir(path.parent)


class SealedStore:
    """Reads and writes one device folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def is_device_folder(self) -> bool:
        return any(
            (self.folder / name).exists()
            for name in (STATE_FILE, SEAL_KEY_FILE, IDENTITY_FILE, DISABLED_FILE)
        )

    def is_disabled(self) -> bool:
        return (self.folder / DISABLED_FILE).exists()

    def disabled_reason(self) -> str:
        try:
            record = json.loads((self.folder / DISABLED_FILE).read_text(encoding="utf-8"))
            return str(record.get("reason", "unknown"))
        except (OSError, ValueError):
            return "unknown (the DISABLED record is unreadable)"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder, so that one process at a time changes it."""
        import fcntl  # noqa: PLC0415 - POSIX only; imported where it is used

        if not self.folder.is_dir():
            raise InputError(
                f"{self.folder}: no such device folder; create one with 'flexheg device provision'"
            )
        with open(self.folder / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def create(self, state: dict[str, Any], identity_pem: bytes) -> None:
        """Create a new device folder: identity key, fresh sealing key, then the first state.

        ``state.json`` is written last, so a crash during provisioning never leaves a state
        without the keys it needs.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.is_device_folder():
            raise InputError(f"{self.folder}: already contains a device; choose an empty folder")
        write_atomic(self.folder / IDENTITY_FILE, identity_pem)
        write_atomic(self.folder / SEAL_KEY_FILE, secrets.token_bytes(32).hex().encode("ascii"))
        self.save(state)

    def has_key(self, name: str) -> bool:
        return (self.folder / name).is_file()

    def _seal_key(self) -> bytes:
        path = self.folder / SEAL_KEY_FILE
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise IntegrityError("the sealing key is missing") from None
        except UnicodeDecodeError as exc:
            raise IntegrityError(f"the sealing key is not hex ({exc.reason})") from None
        except OSError as exc:
            # A transient read error (EMFILE, EIO, EACCES) is not evidence of tampering.
            raise InputError(f"{path}: cannot read the sealing key ({exc.strerror}); retry") from None
        try:
            return bytes.fromhex(text.strip())
        except ValueError:
            raise IntegrityError("the sealing key is not hex") from None

    def load(self) -> dict[str, Any]:
        """Return the state after checking its integrity.

        Raises:
            IntegrityError: the state or the sealing key is missing, unreadable or altered.
        """
        key = self._seal_key()
        try:
            document = json.loads(self.state_path.read_bytes())
            state = document["state"]
            tag = bytes.fromhex(document["mac"])
            if document.get("format") != FORMAT or not isinstance(state, dict):
                raise IntegrityError(f"unknown state format {document.get('format')!r}")
        except FileNotFoundError:
            raise IntegrityError("the sealed state is missing") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"the sealed state is unreadable ({exc})") from None
        except OSError as exc:
            raise InputError(
                f"{self.state_path}: cannot read the sealed state ({exc.strerror}); retry"
            ) from None
        try:
            body = encode(state)
        except InputError as exc:
            raise IntegrityError(f"the sealed state contains values no device writes ({exc})") from None
        mac = hmac.HMAC(key, hashes.SHA256())
        mac.update(body)
        try:
            mac.verify(tag)
        except InvalidSignature:
            raise IntegrityError("the sealed state does not match its MAC") from None
        return state

    def save(self, state: dict[str, Any]) -> None:
        body = encode(state)
        document = {"format": FORMAT, "state": state, "mac": _mac(self._seal_key(), body).hex()}
        write_atomic(self.state_path, json.dumps(document, sort_keys=True).encode("utf-8"))

    def write_key(self, name: str, data: bytes) -> None:
        write_atomic(self.folder / name, data)

    def read_key(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def erase_keys(self, reason: str, tick: int) -> None:
        """Tamper response: record why, then overwrite and delete every key."""
        record = {"reason": reason, "tick": tick}
        write_atomic(self.folder / DISABLED_FILE, json.dumps(record).encode("utf-8"), mode=0o644)
        for name in (SEAL_KEY_FILE, IDENTITY_FILE):
            path = self.folder / name
            with contextlib.suppress(FileNotFoundError):
                size = path.stat().st_size
                with open(path, "r+b") as handle:
                    handle.write(secrets.token_bytes(size))
                    handle.flush()
                    os.fsync(handle.fileno())
                path.unlink()
        _fsync_dir(self.folder)
        logger.warning("device at %s disabled: %s", self.folder, reason)
