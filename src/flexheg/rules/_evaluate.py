"""Evaluation of parsed rule expressions.

Expressions are compiled once into nested Python closures, so that an admission decision does no
tree walking or dispatch on node types. Evaluation is total: a missing fact yields :data:`ERROR`,
which propagates like CEL's error value (``false && ERROR`` is false, ``true || ERROR`` is true).
Integers are unbounded Python integers, so arithmetic never overflows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from flexheg.rules._ast import Arith, BoolOp, Compare, Expr, Fact, Has, Literal, Neg, Not, Value


class _Error:
    """The error value: the result of reading a missing fact."""

    _instance: _Error | None = None

    def __new__(cls) -> _Error:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ERROR"


ERROR: Final = _Error()

Facts = Mapping[str, Value]
Result = Value | _Error
Compiled = Callable[[Facts], Result]


def compile_expression(expr: Expr) -> Compiled:
    """Compile a type-checked expression into a function of the facts."""
    if isinstance(expr, Literal):
        value = expr.value
        return lambda facts: value
    if isinstance(expr, Fact):
        name = expr.name
        return lambda facts: facts.get(name, ERROR)
    if isinstance(expr, Has):
        name = expr.name
        return lambda facts: name in facts
    if isinstance(expr, Not):
        return _compile_not(compile_expression(expr.operand))
    if isinstance(expr, Neg):
        return _compile_neg(compile_expression(expr.operand))
    if isinstance(expr, BoolOp):
        return _compile_bool(expr.op, compile_expression(expr.left), compile_expression(expr.right))
    if isinstance(expr, Compare):
        return _compile_compare(expr.op, compile_expression(expr.left), compile_expression(expr.right))
    if isinstance(expr, Arith):
        return _compile_arith(expr.op, compile_expression(expr.left), compile_expression(expr.right))
    return _compile_in(compile_expression(expr.item), compile_expression(expr.container))


def _compile_not(operand: Compiled) -> Compiled:
    def run(facts: Facts) -> Result:
        value = operand(facts)
        return ERROR if value is ERROR else not value

    return run


def _compile_neg(operand: Compiled) -> Compiled:
    def run(facts: Facts) -> Result:
        value = operand(facts)
        return ERROR if value is ERROR else -value  # type: ignore[operator]

    return run


def _compile_bool(op: str, left: Compiled, right: Compiled) -> Compiled:
    if op == "&&":

        def run_and(facts: Facts) -> Result:
            a = left(facts)
            if a is False:
                return False
            b = right(facts)
            if b is False:
                return False
            return ERROR if a is ERROR or b is ERROR else True

        return run_and

    def run_or(facts: Facts) -> Result:
        a = left(facts)
        if a is True:
            return True
        b = right(facts)
        if b is True:
            return True
        return ERROR if a is ERROR or b is ERROR else False

    return run_or


_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


def _compile_compare(op: str, left: Compiled, right: Compiled) -> Compiled:
    compare = _COMPARE[op]

    def run(facts: Facts) -> Result:
        a = left(facts)
        b = right(facts)
        if a is ERROR or b is ERROR:
            return ERROR
        return compare(a, b)

    return run


def _compile_arith(op: str, left: Compiled, right: Compiled) -> Compiled:
    def run(facts: Facts) -> Result:
        a = left(facts)
        b = right(facts)
        if a is ERROR or b is ERROR:
            return ERROR
        if op == "+":
            return a + b  # type: ignore[operator]
        if op == "-":
            return a - b  # type: ignore[operator]
        return a * b  # type: ignore[operator]

    return run


def _compile_in(item: Compiled, container: Compiled) -> Compiled:
    def run(facts: Facts) -> Result:
        a = item(facts)
        b = container(facts)
        if a is ERROR or b is ERROR:
            return ERROR
        return a in b  # type: ignore[operator]

    return run
