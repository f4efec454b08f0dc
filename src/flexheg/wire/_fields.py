"""Strict readers for the fields of decoded JSON objects.

Every statement parser reads its fields through :class:`Fields`, then calls :meth:`Fields.done`,
which rejects any field it did not read. Unknown fields are therefore always an error.
"""

from __future__ import annotations

import builtins
from typing import Any

from flexheg.errors import InputError
from flexheg.wire._digest import check_digest


class Fields:
    """A JSON object being read field by field, with the path used in error messages."""

    def __init__(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(value).__name__}")
        self._value: dict[str, Any] = value
        self._where = where
        self._read: set[str] = set()

    def _get(self, name: builtins.str) -> Any:
        self._read.add(name)
        if name not in self._value:
            raise InputError(f"{self._where}: missing required field {name!r}")
        return self._value[name]

    def has(self, name: builtins.str) -> builtins.bool:
        return name in self._value

    def path(self, name: builtins.str) -> builtins.str:
        return f"{self._where}.{name}"

    def raw(self, name: builtins.str) -> Any:
        return self._get(name)

    def optional_raw(self, name: builtins.str) -> Any:
        self._read.add(name)
        return self._value.get(name)

    def str(self, name: builtins.str, *, non_empty: builtins.bool = True) -> builtins.str:
        value = self._get(name)
        if not isinstance(value, str):
            raise InputError(f"{self.path(name)}: expected a string, got {value!r}")
        if non_empty and not value:
            raise InputError(f"{self.path(name)}: must not be empty")
        return value

    def optional_str(self, name: builtins.str) -> builtins.str | None:
        if self._value.get(name) is None:
            self._read.add(name)
            return None
        return self.str(name)

    def int(
        self, name: builtins.str, *, minimum: builtins.int | None = None, maximum: builtins.int | None = None
    ) -> builtins.int:
        value = self._get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"{self.path(name)}: expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise InputError(f"{self.path(name)}: {value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise InputError(f"{self.path(name)}: {value} is above the maximum {maximum}")
        return value

    def optional_int(self, name: builtins.str, *, minimum: builtins.int | None = None) -> builtins.int | None:
        if self._value.get(name) is None:
            self._read.add(name)
            return None
        return self.int(name, minimum=minimum)

    def big_int(self, name: builtins.str) -> builtins.int:
        """Read a non-negative integer written as a decimal string (for values beyond 2**53)."""
        value = self._get(name)
        if not isinstance(value, str) or not value.isdigit() or not value.isascii():
            raise InputError(f"{self.path(name)}: expected a decimal string of digits, got {value!r}")
        if len(value) > 1 and value.startswith("0"):
            raise InputError(f"{self.path(name)}: {value!r} has a leading zero")
        return int(value)

    def bool(self, name: builtins.str) -> builtins.bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise InputError(f"{self.path(name)}: expected true or false, got {value!r}")
        return value

    def digest(self, name: builtins.str) -> builtins.str:
        return check_digest(self._get(name), what=self.path(name))

    def list(self, name: builtins.str) -> builtins.list[Any]:
        value = self._get(name)
        if not isinstance(value, list):
            raise InputError(f"{self.path(name)}: expected a list, got {type(value).__name__}")
        return value

    def str_list(self, name: builtins.str) -> builtins.list[builtins.str]:
        items = self.list(name)
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise InputError(f"{self.path(name)}[{index}]: expected a string, got {item!r}")
        return items

    def object(self, name: builtins.str) -> Fields:
        return Fields(self._get(name), self.path(name))

    def done(self) -> None:
        """Reject any field that the parser did not read."""
        unknown = sorted(set(self._value) - self._read)
        if unknown:
            raise InputError(
                f"{self._where}: unknown field(s) {', '.join(map(repr, unknown))}; "
                f"this version of flexheg does not accept them"
            )
