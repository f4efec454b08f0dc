"""Typed statements: the payloads inside signed envelopes.

A statement is a canonical JSON object whose ``type`` field names its kind, for example
``flexheg.dev/approval/v1``. Each kind is a frozen dataclass that subclasses :class:`Statement`
and registers its type string. Parsing rejects unknown types, unknown fields, duplicate keys and
non-canonical bytes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self, TypeVar

from flexheg.errors import InputError
from flexheg.wire._canonical import decode, encode
from flexheg.wire._digest import sha256_digest
from flexheg.wire._fields import Fields

_REGISTRY: dict[str, type[Statement]] = {}

S = TypeVar("S", bound="Statement")


class Statement:
    """Base of every typed statement. Subclasses set ``TYPE`` and implement the two codecs."""

    TYPE: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        type_name = cls.__dict__.get("TYPE")
        if type_name is None:
            return
        if type_name in _REGISTRY:
            raise RuntimeError(f"statement type {type_name} is registered twice")
        _REGISTRY[type_name] = cls

    def body(self) -> dict[str, Any]:
        """Return the statement's fields, without ``type``."""
        raise NotImplementedError

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        """Build the statement from its fields (``type`` already checked). Must call done()."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, **self.body()}

    def encode(self) -> bytes:
        """Return the canonical JSON bytes of the statement."""
        return encode(self.to_dict())

    def digest(self) -> str:
        return sha256_digest(self.encode())


def statement_types() -> list[str]:
    """Return every registered statement type, sorted."""
    return sorted(_REGISTRY)


def _read_type(value: object, what: str) -> tuple[type[Statement], Fields]:
    fields = Fields(value, what)
    type_name = fields.str("type")
    cls = _REGISTRY.get(type_name)
    if cls is None:
        raise InputError(
            f"{what}: unknown statement type {type_name!r}; known types: {', '.join(statement_types())}"
        )
    return cls, fields


def parse_statement_dict(value: object, expected: type[S], *, what: str) -> S:
    """Parse an already decoded statement object of type ``expected``."""
    cls, fields = _read_type(value, what)
    if cls is not expected:
        raise InputError(f"{what}: expected a {expected.TYPE} statement, got {cls.TYPE}")
    return expected.from_fields(fields)


def parse_statement(data: bytes, expected: type[S], *, what: str) -> S:
    """Parse canonical statement bytes of type ``expected``."""
    return parse_statement_dict(decode(data, what=what), expected, what=what)


def parse_any_statement(data: bytes, *, what: str) -> Statement:
    """Parse canonical statement bytes of any registered type."""
    cls, fields = _read_type(decode(data, what=what), what)
    return cls.from_fields(fields)
