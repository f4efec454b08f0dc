"""The parsed form of rule expressions: a small, typed tree that evaluators and provers walk."""

from __future__ import annotations

from dataclasses import dataclass

from flexheg.rules._facts import FactType

Value = int | bool | str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value
    type: FactType


@dataclass(frozen=True, slots=True)
class Fact:
    """A reference to a workload fact by its dotted name, e.g. ``workload.flop``."""

    name: str
    type: FactType


@dataclass(frozen=True, slots=True)
class Has:
    """``has(workload.x)``: true when the fact is present. Never an error."""

    name: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``&&`` or ``||`` over two boolean operands."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Compare:
    """``==``, ``!=``, ``<``, ``<=``, ``>`` or ``>=``; ordering only on integers."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Arith:
    """``+``, ``-`` or ``*`` on integers; ``*`` needs a literal on one side (linear arithmetic)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class In:
    """``item in container``: a string in a list literal or in a string-set fact."""

    item: Expr
    container: Expr


Expr = Literal | Fact | Has | Not | Neg | BoolOp | Compare | Arith | In


def type_of(expr: Expr) -> FactType:
    """Return the static type of a type-checked expression."""
    if isinstance(expr, Literal | Fact):
        return expr.type
    if isinstance(expr, Neg | Arith):
        return FactType.INT
    return FactType.BOOL


def facts_in(expr: Expr) -> set[str]:
    """Return the names of the facts an expression reads."""
    if isinstance(expr, Fact | Has):
        return {expr.name}
    if isinstance(expr, Not | Neg):
        return facts_in(expr.operand)
    if isinstance(expr, BoolOp | Compare | Arith):
        return facts_in(expr.left) | facts_in(expr.right)
    if isinstance(expr, In):
        return facts_in(expr.item) | facts_in(expr.container)
    return set()


def to_source(expr: Expr) -> str:
    """Render an expression back to CEL text, fully parenthesised."""
    if isinstance(expr, Literal):
        if expr.type is FactType.STRING:
            escaped = str(expr.value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            return '"' + escaped + '"'
        if expr.type is FactType.BOOL:
            return "true" if expr.value else "false"
        if expr.type is FactType.STRING_SET:
            assert isinstance(expr.value, tuple)
            return "[" + ", ".join(to_source(Literal(v, FactType.STRING)) for v in expr.value) + "]"
        return str(expr.value)
    if isinstance(expr, Fact):
        return expr.name
    if isinstance(expr, Has):
        return f"has({expr.name})"
    if isinstance(expr, Not):
        return f"!({to_source(expr.operand)})"
    if isinstance(expr, Neg):
        return f"-({to_source(expr.operand)})"
    if isinstance(expr, BoolOp | Compare | Arith):
        return f"({to_source(expr.left)} {expr.op} {to_source(expr.right)})"
    return f"({to_source(expr.item)} in {to_source(expr.container)})"
