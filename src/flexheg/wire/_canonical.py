"""Canonical JSON (RFC 8785) encoding and strict decoding.

Signed statements are canonical JSON. They contain only objects, arrays, strings, integers,
booleans and null: integers must fit in the interoperable range of RFC 8785 (|n| < 2**53), and
larger quantities (FLOP counts, for example) are written as decimal strings. Floats are not
allowed, so two implementations can never disagree on a number's bytes.

Encoding takes a fast path through the standard library for ASCII-only documents, where
``json.dumps`` with sorted keys and no whitespace produces the RFC 8785 bytes exactly (the
property tests compare both paths); any other document goes through the ``rfc8785`` package.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from flexheg.errors import InputError

MAX_SAFE_INTEGER = 2**53 - 1

JSONValue = Any
"""A decoded JSON value: dict, list, str, int, bool or None (no floats)."""


MAX_DEPTH = 100
"""Deepest nesting of arrays and objects accepted; statements use fewer than ten levels."""


def _check_value(value: object, path: str, depth: int = 0) -> bool:
    """Validate ``value`` for canonical encoding. Return True if it is ASCII-only."""
    if depth > MAX_DEPTH:
        raise InputError(f"{path}: JSON nesting is too deep (more than {MAX_DEPTH} levels)")
    if isinstance(value, str):
        return value.isascii()
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise InputError(
                f"{path}: integer {value} is outside the canonical JSON range |n| < 2**53; "
                "write it as a decimal string"
            )
        return True
    if isinstance(value, dict):
        ascii_only = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"{path}: object key {key!r} is not a string")
            ascii_only = key.isascii() and ascii_only
            ascii_only = _check_value(item, f"{path}.{key}", depth + 1) and ascii_only
        return ascii_only
    if isinstance(value, list | tuple):
        ascii_only = True
        for index, item in enumerate(value):
            ascii_only = _check_value(item, f"{path}[{index}]", depth + 1) and ascii_only
        return ascii_only
    if isinstance(value, float):
        raise InputError(f"{path}: float {value!r} is not allowed in signed statements; use an integer")
    raise InputError(f"{path}: {type(value).__name__} cannot be encoded as JSON")


def _dumps_sorted(value: JSONValue) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("ascii")


def encode(value: JSONValue) -> bytes:
    """Encode ``value`` as RFC 8785 canonical JSON bytes.

    Raises:
        InputError: the value contains a float, an out-of-range integer or a non-JSON type, or it
            is nested deeper than the interpreter's recursion limit allows.
    """
    try:
        if _check_value(value, "$"):
            return json.dumps(
                value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("ascii")
        encoded: bytes = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeError) as exc:
        raise InputError(f"$: cannot encode as canonical JSON: {exc}") from exc
    except RecursionError:
        raise InputError("$: JSON nesting is too deep to encode") from None
    return encoded


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise InputError(f"duplicate JSON key {key!r}; each key may appear once per object")
        result[key] = item
    return result


def _reject_float(text: str) -> Any:
    raise InputError(f"number {text} is not an integer; signed statements hold integers only")


def _reject_constant(text: str) -> Any:
    raise InputError(f"{text} is not valid JSON")


def _parse_safe_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"integer {text[:20]}... has too many digits") from None
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise InputError(
            f"integer {value} is outside the canonical JSON range |n| < 2**53; write it as a decimal string"
        )
    return value


def loads_strict(data: bytes | str, *, what: str) -> JSONValue:
    """Parse JSON, rejecting duplicate keys, NaN/Infinity and invalid UTF-8.

    ``what`` names the input in error messages (a file name or a field).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InputError(f"{what}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{what}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg} "
            "(is the file truncated?)"
        ) from None
    except RecursionError:
        raise InputError(f"{what}: JSON nesting is too deep") from None


def decode(data: bytes, *, what: str) -> JSONValue:
    """Parse canonical JSON bytes strictly.

    Rejects invalid UTF-8, duplicate keys, floats and any input whose bytes differ from the
    canonical encoding of what they decode to, so that one statement has exactly one encoding.
    """
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_float=_reject_float,
            parse_int=_parse_safe_int,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError as exc:
        raise InputError(f"{what}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{what}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg} "
            "(is the file truncated?)"
        ) from None
    except RecursionError:
        raise InputError(f"{what}: JSON nesting is too deep") from None
    # ASCII input without \u escapes decodes to ASCII strings, and the parser hooks have already
    # checked every number, so the standard encoder gives the canonical bytes without a walk.
    ascii_only = data.isascii() and b"\\u" not in data
    try:
        canonical = _dumps_sorted(value) if ascii_only else encode(value)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    except RecursionError:
        raise InputError(f"{what}: JSON nesting is too deep") from None
    if canonical != data:
        raise InputError(
            f"{what}: JSON is not in RFC 8785 canonical form; re-encode it with flexheg "
            "instead of editing it by hand"
        )
    return value
