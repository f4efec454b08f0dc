"""Fast path of the evaluator: a ruleset compiled into one generated Python function.

When every fact the ruleset reads is present, no expression can produce an error value (the
parser type-checks everything, and the language has no division or overflow), so two-valued
Python ``and``/``or``/``not`` compute exactly what the three-valued closures compute. The
generated function loads each fact once into a local and tests the rules in decision order.

The source is generated only from the typed tree: fact names become local variable names,
literals are written with ``repr`` (always a valid Python literal for int, bool, str and tuples of
str), and operators come from a fixed table. No text from a rule file reaches the code verbatim.
The property tests check that both paths decide identically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from flexheg.rules._ast import (
    Arith,
    BoolOp,
    Compare,
    Expr,
    Fact,
    Has,
    In,
    Literal,
    Neg,
    Not,
    facts_in,
)

_BOOL_OPS = {"&&": "and", "||": "or"}
_ALLOWED_OPS = {"==", "!=", "<", "<=", ">", ">=", "+", "-", "*"}


def _emit(expr: Expr, names: Mapping[str, str]) -> str:
    if isinstance(expr, Literal):
        return repr(expr.value)
    if isinstance(expr, Fact):
        return names[expr.name]
    if isinstance(expr, Has):
        return "True"
    if isinstance(expr, Not):
        return f"(not {_emit(expr.operand, names)})"
    if isinstance(expr, Neg):
        return f"(-{_emit(expr.operand, names)})"
    if isinstance(expr, BoolOp):
        return f"({_emit(expr.left, names)} {_BOOL_OPS[expr.op]} {_emit(expr.right, names)})"
    if isinstance(expr, Compare | Arith):
        if expr.op not in _ALLOWED_OPS:
            raise ValueError(f"operator {expr.op!r} cannot be compiled")
        return f"({_emit(expr.left, names)} {expr.op} {_emit(expr.right, names)})"
    if isinstance(expr, In):
        return f"({_emit(expr.item, names)} in {_emit(expr.container, names)})"
    raise TypeError(f"unknown node {type(expr).__name__}")


def compile_ruleset(
    conditions: Sequence[Expr],
) -> tuple[frozenset[str], Callable[[Mapping[str, object]], int]]:
    """Compile conditions, tested in order, into ``f(facts) -> index of the first true one or -1``.

    Returns the set of fact names the function needs alongside it; the caller must only call it
    when all of them are present.
    """
    needed: set[str] = set()
    for condition in conditions:
        needed |= facts_in(condition)
    names = {name: f"v{index}" for index, name in enumerate(sorted(needed))}
    lines = ["def decide(facts):"]
    lines += [f"    {local} = facts[{name!r}]" for name, local in names.items()]
    for index, condition in enumerate(conditions):
        lines.append(f"    if {_emit(condition, names)}:")
        lines.append(f"        return {index}")
    lines.append("    return -1")
    namespace: dict[str, object] = {"__builtins__": {}}
    exec(compile("\n".join(lines), "<flexheg-ruleset>", "exec"), namespace)  # noqa: S102
    function = namespace["decide"]
    assert callable(function)
    return frozenset(needed), function
