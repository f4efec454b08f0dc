"""Canonical JSON: agreement with the ``rfc8785`` package, round trips and strict rejection."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flexheg.errors import InputError
from flexheg.wire import MAX_SAFE_INTEGER, decode, encode, loads_strict

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ascii_text = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=12)
any_text = st.text(max_size=12)
integers = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """JSON values that canonical JSON accepts: no floats, integers inside |n| < 2**53."""
    scalars = st.none() | st.booleans() | integers | text
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
        max_leaves=20,
    )


@SETTINGS
@given(json_values(ascii_text))
def test_encode_matches_rfc8785_ascii(value: Any) -> None:
    assert encode(value) == rfc8785.dumps(value)


@SETTINGS
@given(json_values(any_text))
def test_encode_matches_rfc8785_unicode(value: Any) -> None:
    assert encode(value) == rfc8785.dumps(value)


@SETTINGS
@given(json_values(any_text))
def test_decode_inverts_encode(value: Any) -> None:
    assert decode(encode(value), what="value") == value


@SETTINGS
@given(json_values(any_text))
def test_loads_strict_reads_canonical(value: Any) -> None:
    assert loads_strict(encode(value), what="value") == value


@SETTINGS
@given(json_values(any_text), st.sampled_from(["indent", "spaces", "ascii", "newline"]))
def test_decode_rejects_other_encodings(value: Any, style: str) -> None:
    if style == "indent":
        other = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)
    elif style == "spaces":
        other = json.dumps(value, sort_keys=True, ensure_ascii=False)
    elif style == "ascii":
        other = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    else:
        other = encode(value).decode("utf-8") + "\n"
    data = other.encode("utf-8")
    assume(data != encode(value))
    with pytest.raises(InputError, match="canonical form"):
        decode(data, what="value")


@SETTINGS
@given(st.dictionaries(ascii_text, integers, min_size=2, max_size=5))
def test_decode_rejects_unsorted_keys(value: dict[str, int]) -> None:
    reordered = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in sorted(value.items(), reverse=True)) + "}"
    with pytest.raises(InputError, match="canonical form"):
        decode(reordered.encode(), what="value")


@SETTINGS
@given(any_text, integers, integers)
def test_duplicate_key_rejected(key: str, first: int, second: int) -> None:
    data = "{" + json.dumps(key, ensure_ascii=False) + f":{first}," + json.dumps(key, ensure_ascii=False)
    data += f":{second}" + "}"
    for parse in (decode, loads_strict):
        with pytest.raises(InputError, match="duplicate JSON key"):
            parse(data.encode("utf-8"), what="value")


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_rejected(number: float) -> None:
    with pytest.raises(InputError, match="float"):
        encode({"x": number})
    with pytest.raises(InputError, match="not an integer"):
        decode(json.dumps({"x": number}, separators=(",", ":")).encode(), what="value")


@SETTINGS
@given(st.integers(min_value=MAX_SAFE_INTEGER + 1) | st.integers(max_value=-MAX_SAFE_INTEGER - 1))
def test_unsafe_integer_rejected(number: int) -> None:
    with pytest.raises(InputError, match="outside the canonical JSON range"):
        encode([number])
    with pytest.raises(InputError, match="outside the canonical JSON range"):
        decode(str(number).encode(), what="value")


@SETTINGS
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_input_error(data: bytes) -> None:
    try:
        value = decode(data, what="value")
    except InputError:
        return
    assert encode(value) == data


@SETTINGS
@given(json_values(any_text), st.integers(min_value=0), st.binary(min_size=1, max_size=3))
def test_mutated_encoding_raises_only_input_error(value: Any, position: int, junk: bytes) -> None:
    data = bytearray(encode(value))
    index = position % (len(data) + 1)
    data[index:index] = junk
    try:
        decoded = decode(bytes(data), what="value")
    except InputError:
        return
    assert encode(decoded) == bytes(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"NaN", "not valid JSON"),
        (b"[Infinity]", "not valid JSON"),
        (b"-0", "canonical form"),
        (b"1e2", "not an integer"),
        (b'"\\u00e9"', "canonical form"),
        (b'"\\/"', "canonical form"),
        (b'"\xff"', "not valid UTF-8"),
        (b"\xef\xbb\xbf{}", "invalid JSON"),
        (b'"\\ud800"', "cannot encode"),
        (b'{"a":1', "invalid JSON"),
    ],
)
def test_decode_rejects_table(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as exc:
        decode(data, what="sample.json")
    assert str(exc.value).startswith("sample.json: ")


def test_truncated_input_names_the_fix() -> None:
    with pytest.raises(InputError, match="truncated"):
        decode(encode({"a": [1, 2, 3]})[:-3], what="update.json")


def test_deep_nesting_raises_input_error() -> None:
    """Nesting near the interpreter's recursion limit fails with InputError, never RecursionError."""
    import sys  # noqa: PLC0415

    limit = sys.getrecursionlimit()
    for depth in range(limit - 200, limit + 20, 5):
        data = b"[" * depth + b"]" * depth
        try:
            decode(data, what="value")
        except InputError:
            continue
    with pytest.raises(InputError, match="too deep"):
        decode(b"[" * 100_000 + b"]" * 100_000, what="value")


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, "x"]},
        {"é": "ü", "a": "\u2028"},
        {"\U0001f600": 1, "\uffff": 2},
        "\x00\x1f\x7f",
    ],
)
def test_encode_table(value: Any) -> None:
    assert encode(value) == rfc8785.dumps(value)
    assert decode(encode(value), what="value") == value


def test_encode_rejects_non_json_types() -> None:
    for value in ({1: "x"}, {"x": b"bytes"}, {"x": {1, 2}}, {"x": 1.5}):
        with pytest.raises(InputError):
            encode(value)
