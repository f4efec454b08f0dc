"""Parser for the rule expression language: a deterministic, total fragment of CEL.

Supported syntax (CEL spelling): integer literals (``1e25`` is the exact integer 10**25),
string literals, ``true``/``false``, list literals of strings, fact names such as
``workload.flop``, cap names ``caps.NAME`` (replaced by their integer value), ``has(fact)``,
``!``, unary ``-``, ``* + -``, comparisons, ``in``, ``&&`` and ``||``, and parentheses.

Left out on purpose: floats, division, function calls other than ``has``, macros and
comprehensions, maps, and ``?:``. Everything left is decidable in linear integer arithmetic, which
the prover relies on; ``*`` therefore needs an integer literal on at least one side.

Expressions are type-checked while they are parsed, so the only run-time failure left is a
missing fact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from flexheg.errors import InputError
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
    type_of,
)
from flexheg.rules._facts import FACTS, MAX_FLOP, FactType

MAX_SOURCE_LENGTH = 4096
MAX_DEPTH = 48
MAX_TREE_DEPTH = 96
"""Deepest parsed tree, chains of binary operators included. The compiled evaluators recurse once
per level, and CPython rejects generated code nested more than 200 parentheses deep."""

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+]?\d+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[<>!()\[\],+\-*])
    """,
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class _Parser:
    def __init__(self, source: str, caps: Mapping[str, int], where: str) -> None:
        self.where = where
        self.source = source
        self.caps = caps
        self.tokens: list[tuple[str, str, int]] = []
        position = 0
        while position < len(source):
            match = _TOKEN_RE.match(source, position)
            if match is None:
                raise InputError(
                    f"{where}: unexpected character {source[position]!r} at column {position + 1} "
                    f"in {source!r}"
                )
            kind = match.lastgroup
            assert kind is not None
            if kind != "ws":
                self.tokens.append((kind, match.group(), position))
            position = match.end()
        self.tokens.append(("end", "", len(source)))
        self.index = 0
        self.depth = 0

    def fail(self, message: str, position: int | None = None) -> None:
        if position is None:
            position = self.tokens[self.index][2]
        raise InputError(f"{self.where}: {message} at column {position + 1} in {self.source!r}")

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        kind, value, position = self.take()
        if value != text or kind not in ("op", "name"):
            self.fail(f"expected {text!r}, found {value or 'end of rule'!r}", position)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"expression nests deeper than {MAX_DEPTH} levels")

    # Grammar, lowest precedence first.

    def parse(self) -> Expr:
        expr = self.parse_or()
        kind, value, position = self.peek()
        if kind != "end":
            self.fail(f"unexpected {value!r}", position)
        if type_of(expr) is not FactType.BOOL:
            self.fail("a rule condition must be a boolean expression", 0)
        if _tree_depth(expr) > MAX_TREE_DEPTH:
            self.fail(
                f"expression is more than {MAX_TREE_DEPTH} operators deep; split it into several rules", 0
            )
        return expr

    def parse_or(self) -> Expr:
        left = self.parse_and()
        while self.peek()[1] == "||":
            position = self.take()[2]
            right = self.parse_and()
            self.check_bool(left, right, "||", position)
            left = BoolOp("||", left, right)
        return left

    def parse_and(self) -> Expr:
        left = self.parse_relation()
        while self.peek()[1] == "&&":
            position = self.take()[2]
            right = self.parse_relation()
            self.check_bool(left, right, "&&", position)
            left = BoolOp("&&", left, right)
        return left

    def parse_relation(self) -> Expr:
        left = self.parse_sum()
        kind, value, position = self.peek()
        if kind == "op" and value in _COMPARISONS:
            self.take()
            right = self.parse_sum()
            return self.make_compare(value, left, right, position)
        if kind == "name" and value == "in":
            self.take()
            right = self.parse_sum()
            if type_of(left) is not FactType.STRING or type_of(right) is not FactType.STRING_SET:
                self.fail("'in' needs a string on the left and a list of strings on the right", position)
            return In(left, right)
        return left

    def parse_sum(self) -> Expr:
        left = self.parse_product()
        while self.peek()[1] in ("+", "-"):
            op, position = self.take()[1:]
            right = self.parse_product()
            self.check_int(left, right, op, position)
            left = Arith(op, left, right)
        return left

    def parse_product(self) -> Expr:
        left = self.parse_unary()
        while self.peek()[1] == "*":
            position = self.take()[2]
            right = self.parse_unary()
            self.check_int(left, right, "*", position)
            if not isinstance(left, Literal) and not isinstance(right, Literal):
                self.fail("'*' needs an integer literal on one side (rules use linear arithmetic)", position)
            left = Arith("*", left, right)
        return left

    def parse_unary(self) -> Expr:
        kind, value, position = self.peek()
        if kind == "op" and value in ("!", "-"):
            self.take()
            self.enter()
            operand = self.parse_unary()
            self.depth -= 1
            if value == "!":
                if type_of(operand) is not FactType.BOOL:
                    self.fail("'!' needs a boolean operand", position)
                return Not(operand)
            if type_of(operand) is not FactType.INT:
                self.fail("unary '-' needs an integer operand", position)
            return Neg(operand)
        return self.parse_primary()

    def parse_primary(self) -> Expr:
        kind, value, position = self.take()
        if kind == "number":
            return Literal(self.parse_number(value, position), FactType.INT)
        if kind == "string":
            return Literal(self.parse_string(value, position), FactType.STRING)
        if kind == "op" and value == "(":
            self.enter()
            inner = self.parse_or()
            self.depth -= 1
            self.expect(")")
            return inner
        if kind == "op" and value == "[":
            return self.parse_list()
        if kind == "name":
            return self.parse_name(value, position)
        self.fail(f"unexpected {value or 'end of rule'!r}", position)
        raise AssertionError("unreachable")

    def parse_list(self) -> Expr:
        items: list[str] = []
        while self.peek()[1] != "]":
            kind, value, position = self.take()
            if kind != "string":
                self.fail("list literals may hold only strings", position)
            items.append(self.parse_string(value, position))
            if self.peek()[1] == ",":
                self.take()
            elif self.peek()[1] != "]":
                self.fail("expected ',' or ']' in list literal")
        self.take()
        return Literal(tuple(items), FactType.STRING_SET)

    def parse_name(self, name: str, position: int) -> Expr:
        if name in ("true", "false"):
            return Literal(name == "true", FactType.BOOL)
        if name == "has":
            self.expect("(")
            kind, fact, fact_position = self.take()
            if kind != "name" or fact not in FACTS:
                self.fail(f"has() needs a fact name, found {fact!r}", fact_position)
            self.expect(")")
            return Has(fact)
        if name.startswith("caps."):
            cap = name.removeprefix("caps.")
            if cap not in self.caps:
                known = ", ".join(sorted(self.caps)) or "none declared"
                self.fail(f"unknown cap {cap!r} (caps: {known})", position)
            return Literal(self.caps[cap], FactType.INT)
        spec = FACTS.get(name)
        if spec is None:
            self.fail(f"unknown fact {name!r}; known facts: {', '.join(sorted(FACTS))}", position)
        assert spec is not None
        return Fact(name, spec.type)

    def parse_number(self, text: str, position: int) -> int:
        try:
            number = Decimal(text)
        except InvalidOperation:
            self.fail(f"invalid number {text!r}", position)
        # Compare as a Decimal first: int() of a huge exponent such as 1e999999999 never returns.
        if number > MAX_FLOP:
            self.fail(f"{text} is above the largest allowed number 1e32", position)
        if number != number.to_integral_value():
            self.fail(f"{text} is not an integer; rules use exact integers only", position)
        return int(number)

    def parse_string(self, token: str, position: int) -> str:
        body = token[1:-1]
        result: list[str] = []
        index = 0
        while index < len(body):
            char = body[index]
            if char == "\\":
                escaped = body[index + 1]
                if escaped not in _ESCAPES:
                    self.fail(f"unsupported escape \\{escaped}", position)
                result.append(_ESCAPES[escaped])
                index += 2
            else:
                result.append(char)
                index += 1
        return "".join(result)

    def make_compare(self, op: str, left: Expr, right: Expr, position: int) -> Expr:
        left_type, right_type = type_of(left), type_of(right)
        if left_type is not right_type or left_type is FactType.STRING_SET:
            self.fail(f"cannot compare {left_type.value} with {right_type.value} using {op!r}", position)
        if op not in ("==", "!=") and left_type is not FactType.INT:
            self.fail(f"{op!r} orders integers only, not {left_type.value}", position)
        return Compare(op, left, right)

    def check_bool(self, left: Expr, right: Expr, op: str, position: int) -> None:
        if type_of(left) is not FactType.BOOL or type_of(right) is not FactType.BOOL:
            self.fail(f"{op!r} needs boolean operands", position)

    def check_int(self, left: Expr, right: Expr, op: str, position: int) -> None:
        if type_of(left) is not FactType.INT or type_of(right) is not FactType.INT:
            self.fail(f"{op!r} needs integer operands", position)


def _tree_depth(expr: Expr) -> int:
    """Return the depth of a tree without recursion, so that a long operator chain cannot overflow."""
    deepest = 0
    stack: list[tuple[Expr, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Not | Neg):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, BoolOp | Compare | Arith):
            stack += [(node.left, depth + 1), (node.right, depth + 1)]
        elif isinstance(node, In):
            stack += [(node.item, depth + 1), (node.container, depth + 1)]
    return deepest


def parse_expression(source: str, *, caps: Mapping[str, int] | None = None, where: str = "rule") -> Expr:
    """Parse and type-check a boolean rule condition.

    Raises:
        InputError: a syntax or type error, an unknown fact or cap, or an over-long expression.
    """
    if len(source) > MAX_SOURCE_LENGTH:
        raise InputError(
            f"{where}: condition is {len(source)} characters; the maximum is {MAX_SOURCE_LENGTH}"
        )
    return _Parser(source, caps or {}, where).parse()
