"""Weight files and state dicts, digested the canonical way of :func:`flexheg.device.records.weights_digest`.

A safetensors file is read with the parser below, which needs neither torch nor numpy and
hashes each tensor by streaming it from the file. A PyTorch state-dict file (``.pt``, ``.pth``,
``.bin``) needs torch and is loaded with ``weights_only=True``, which never runs pickled code.

The safetensors layout, as safetensors 0.8 writes it: an unsigned 64-bit little-endian header
size N, then N bytes of JSON, then the data buffer. The JSON maps each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` and may hold a ``__metadata__`` map of
strings. Offsets are relative to the buffer, and the tensors must tile it exactly, without gaps
or overlaps.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from flexheg.device.records import DTYPE_SIZES, TensorDigest, tensor_digest, weights_digest
from flexheg.errors import InputError
from flexheg.wire import loads_strict

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""Largest safetensors header accepted, in bytes; a larger one is rejected before it is read."""

_CHUNK = 1 << 20
SAFETENSORS_SUFFIXES = (".safetensors",)
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin")


def _read_exact(handle: BinaryIO, size: int, what: str) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise InputError(f"{what}: the file ends early (is it truncated?)")
    return data


def parse_safetensors_header(
    header: bytes, buffer_size: int, *, what: str
) -> list[tuple[str, str, tuple[int, ...], int, int]]:
    """Validate a safetensors JSON header against the size of the data buffer.

    Returns ``(name, dtype, shape, begin, end)`` for each tensor, sorted by ``begin``.
    """
    document = loads_strict(header, what=f"{what} header")
    if not isinstance(document, dict):
        raise InputError(f"{what}: the header is not a JSON object")
    entries = []
    for name, value in document.items():
        if name == "__metadata__":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise InputError(f"{what}: __metadata__ must map strings to strings")
            continue
        where = f"{what} tensor {name!r}"
        if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
            raise InputError(f"{where}: expected exactly the fields dtype, shape and data_offsets")
        dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise InputError(f"{where}: dtype {dtype!r} is not supported; use one of {sorted(DTYPE_SIZES)}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**53 for d in shape
        ):
            raise InputError(f"{where}: shape must be a list of non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= buffer_size
        ):
            raise InputError(
                f"{where}: data_offsets must be [begin, end] inside the {buffer_size}-byte buffer"
            )
        size = DTYPE_SIZES[dtype]
        for dimension in shape:
            size *= dimension
        if offsets[1] - offsets[0] != size:
            raise InputError(
                f"{where}: {offsets[1] - offsets[0]} bytes of data, but {dtype} {shape} needs {size}"
            )
        entries.append((name, dtype, tuple(shape), offsets[0], offsets[1]))
    entries.sort(key=lambda entry: (entry[3], entry[4]))
    position = 0
    for name, _, _, begin, end in entries:
        if begin != position:
            raise InputError(
                f"{what}: tensor {name!r} starts at {begin}, expected {position}; "
                "the buffer has gaps or overlaps"
            )
        position = end
    if position != buffer_size:
        raise InputError(f"{what}: the tensors cover {position} of the {buffer_size} buffer bytes")
    return entries


def safetensors_digests(path: Path) -> list[TensorDigest]:
    """Read a safetensors file and digest each tensor, streaming its bytes from the file."""
    what = str(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read weights: {exc.strerror}") from None
    with handle:
        file_size = path.stat().st_size
        (header_size,) = struct.unpack("<Q", _read_exact(handle, 8, what))
        if header_size > MAX_HEADER_BYTES or 8 + header_size > file_size:
            raise InputError(f"{what}: header size {header_size} is invalid for a {file_size}-byte file")
        header = _read_exact(handle, header_size, what)
        entries = parse_safetensors_header(header, file_size - 8 - header_size, what=what)
        digests = []
        for name, dtype, shape, begin, end in entries:
            handle.seek(8 + header_size + begin)
            hasher = hashlib.sha256()
            remaining = end - begin
            while remaining:
                chunk = _read_exact(handle, min(remaining, _CHUNK), what)
                hasher.update(chunk)
                remaining -= len(chunk)
            digests.append(TensorDigest(name, dtype, shape, "sha256:" + hasher.hexdigest()))
    return digests


def _torch_dtypes() -> dict[Any, str]:
    import torch  # noqa: PLC0415 - torch is an optional extra

    names = {
        "bool": "BOOL",
        "uint8": "U8",
        "int8": "I8",
        "float8_e4m3fn": "F8_E4M3",
        "float8_e5m2": "F8_E5M2",
        "uint16": "U16",
        "int16": "I16",
        "float16": "F16",
        "bfloat16": "BF16",
        "uint32": "U32",
        "int32": "I32",
        "float32": "F32",
        "uint64": "U64",
        "int64": "I64",
        "float64": "F64",
        "complex64": "C64",
    }
    return {getattr(torch, name): code for name, code in names.items() if hasattr(torch, name)}


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """Return a tensor's raw bytes in C order, little-endian, copied to host memory."""
    if sys.byteorder != "little":
        raise InputError("weight digests are defined on little-endian bytes; this host is big-endian")
    import torch  # noqa: PLC0415 - torch is an optional extra

    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().data


def state_dict_digests(state_dict: Mapping[str, torch.Tensor]) -> list[TensorDigest]:
    """Digest each tensor of a state dict (parameters and buffers, as ``Module.state_dict`` gives them)."""
    dtypes = _torch_dtypes()
    digests = []
    for name, tensor in state_dict.items():
        code = dtypes.get(tensor.dtype)
        if code is None:
            raise InputError(f"tensor {name!r}: dtype {tensor.dtype} has no canonical name; convert it first")
        digests.append(tensor_digest(name, code, tuple(tensor.shape), tensor_bytes(tensor)))
    return digests


def state_dict_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Return the canonical weight digest of a state dict."""
    return weights_digest(state_dict_digests(state_dict))


def tensors_digest(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """Return the canonical digest of named tensors, for batches and data sets."""
    return state_dict_digest(dict(tensors))


def _load_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        import torch  # noqa: PLC0415 - torch is an optional extra
    except ImportError:
        raise InputError(
            f"{path}: reading a PyTorch state dict needs torch; "
            "install flexheg[torch] or convert the file to safetensors"
        ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise InputError(f"{path}: not a PyTorch state dict file: {exc}") from None
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise InputError(
            f"{path}: expected a flat mapping of tensor names to tensors (a model's state_dict())"
        )
    return loaded


def file_digests(path: Path) -> list[TensorDigest]:
    """Digest each tensor of a safetensors or PyTorch state-dict file, chosen by the file suffix."""
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return safetensors_digests(path)
    if suffix in STATE_DICT_SUFFIXES:
        return state_dict_digests(_load_state_dict(path))
    raise InputError(
        f"{path}: unknown weights format {suffix!r}; "
        "pass a .safetensors file or a state dict (.pt, .pth, .bin)"
    )


def file_digest(path: Path) -> str:
    """Return the canonical weight digest of a safetensors or PyTorch state-dict file."""
    return weights_digest(file_digests(path))


__all__ = [
    "MAX_HEADER_BYTES",
    "file_digest",
    "file_digests",
    "parse_safetensors_header",
    "safetensors_digests",
    "state_dict_digest",
    "state_dict_digests",
    "tensor_bytes",
    "tensors_digest",
]
