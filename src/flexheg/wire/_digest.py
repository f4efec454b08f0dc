"""SHA-256 digests written with their algorithm: ``sha256:<64 lowercase hex digits>``."""

from __future__ import annotations

import hashlib
import re

from flexheg.errors import InputError

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def sha256_digest(data: bytes) -> str:
    """Return the ``sha256:`` digest string of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(value: object, *, what: str) -> str:
    """Return ``value`` if it is a well-formed ``sha256:`` digest, else raise InputError."""
    if not isinstance(value, str) or not _DIGEST_RE.fullmatch(value):
        raise InputError(
            f"{what}: {value!r} is not a digest; expected 'sha256:' followed by 64 lowercase hex digits"
        )
    return value
