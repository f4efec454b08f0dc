"""The safetensors reader and the canonical weight digest, without torch."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexheg.device.records import DTYPE_SIZES, tensor_digest, weights_digest
from flexheg.errors import InputError
from flexheg.integrations.weights import parse_safetensors_header, safetensors_digests

Tensor = tuple[str, str, tuple[int, ...], bytes]


def _safetensors(tensors: list[Tensor], metadata: dict[str, str] | None = None) -> bytes:
    header: dict[str, object] = {}
    data = b""
    for name, dtype, shape, raw in tensors:
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


@st.composite
def tensors(draw: st.DrawFn) -> list[Tensor]:
    names = draw(
        st.lists(st.text("abcdefgh._0123", min_size=1, max_size=12), min_size=1, max_size=5, unique=True)
    )
    result = []
    for name in names:
        dtype = draw(st.sampled_from(sorted(DTYPE_SIZES)))
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        size = DTYPE_SIZES[dtype]
        for dimension in shape:
            size *= dimension
        result.append((name, dtype, shape, draw(st.binary(min_size=size, max_size=size))))
    return result


@settings(max_examples=60, deadline=None)
@given(tensors())
def test_safetensors_digest_matches_tensor_digests(
    tmp_path_factory: pytest.TempPathFactory, items: list[Tensor]
) -> None:
    path = tmp_path_factory.mktemp("st") / "w.safetensors"
    path.write_bytes(_safetensors(items, {"format": "pt"}))
    expected = weights_digest(tensor_digest(*item) for item in items)
    assert weights_digest(safetensors_digests(path)) == expected


@settings(max_examples=40, deadline=None)
@given(tensors(), st.randoms())
def test_weights_digest_ignores_order(items: list[Tensor], random: st.SearchStrategy[object]) -> None:
    digests = [tensor_digest(*item) for item in items]
    shuffled = list(digests)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert weights_digest(shuffled) == weights_digest(digests)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_header_parser_rejects_garbage_cleanly(header: bytes) -> None:
    with contextlib.suppress(InputError):
        parse_safetensors_header(header, 16, what="w")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_file_reader_rejects_garbage_cleanly(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("garbage") / "g.safetensors"
    path.write_bytes(data)
    with contextlib.suppress(InputError):
        safetensors_digests(path)


def test_one_byte_changes_digest(tmp_path: Path) -> None:
    items: list[Tensor] = [("w", "F32", (2, 2), bytes(range(16))), ("b", "F32", (2,), bytes(8))]
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors(items))
    before = weights_digest(safetensors_digests(path))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert weights_digest(safetensors_digests(path)) != before


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, "needs 8"),
        ({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, "not supported"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1}}, "exactly the fields"),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, "non-negative"),
        (
            {
                "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
                "v": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
            },
            "gaps or overlaps",
        ),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, "cover 4 of the 8"),
        ({"__metadata__": {"a": 1}}, "__metadata__"),
    ],
)
def test_malformed_headers_rejected(header: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_safetensors_header(json.dumps(header).encode(), 8, what="w")


def test_duplicate_names_rejected() -> None:
    digest = tensor_digest("w", "U8", (1,), b"\x00")
    with pytest.raises(InputError, match="appears twice"):
        weights_digest([digest, digest])


def test_empty_weights_rejected() -> None:
    with pytest.raises(InputError, match="at least one tensor"):
        weights_digest([])


def test_truncated_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors([("w", "F32", (2,), bytes(8))])[:-3])
    with pytest.raises(InputError):
        safetensors_digests(path)
