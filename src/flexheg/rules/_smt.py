"""Translation of rulesets into SMT formulas over the declared facts (z3, linear integer arithmetic).

Every fact gets a presence variable and a value variable, so the three-valued semantics of the
evaluator are exact: a boolean expression becomes a pair ``(is_true, is_false)``, and it is an
error exactly when neither holds. Integer and string expressions become a pair ``(term, ok)``
where ``ok`` is true when no fact they read is missing.

Strings are an enumeration. The universe contains every string literal the translated expressions
mention, the workload kinds, and one fresh value per free string fact. A string fact is an integer
index into that universe, and a string-set fact is one membership bit per universe element.
Expressions only test strings for equality and membership, and both are unchanged when strings
outside the literals are renamed, so every assignment of real strings maps onto the universe
with the same truth values, and every model maps back to real strings.

Invariants the prover relies on:

* The domain constraints restrict each fact to its declared bounds and choices, the strings that
  workload descriptors carry to non-empty values, and the facts every descriptor carries to
  present.
* A node outside the fragment raises :class:`UntranslatableError`; nothing is approximated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import z3

from flexheg.rules._ast import Arith, BoolOp, Compare, Expr, Fact, Has, In, Literal, Neg, Not, Value, type_of
from flexheg.rules._facts import FACTS, FactType
from flexheg.rules._ruleset import Effect, Ruleset

logger = logging.getLogger(__name__)

DESCRIPTOR_REQUIRED = ("workload.kind", "workload.run_id", "workload.flop", "workload.cluster_size")
"""Facts that every workload descriptor carries: ``parse_workload`` rejects a descriptor without them."""

DESCRIPTOR_PREFIX = "workload."
"""Facts named ``workload.NAME`` come from the descriptor field ``NAME``; all others do not."""

_FREE_STRING_FACTS = tuple(
    name for name, spec in sorted(FACTS.items()) if spec.type is FactType.STRING and not spec.choices
)

BoolPair = tuple[Any, Any]
"""``(is_true, is_false)`` of a boolean expression, both z3 booleans."""
TermPair = tuple[Any, Any]
"""``(term, ok)`` of an integer or string expression: the z3 term and its definedness."""


class UntranslatableError(Exception):
    """An expression node that the SMT translation does not cover."""


def string_literals(expr: Expr) -> set[str]:
    """Return every string, including list elements, that an expression mentions as a literal."""
    found: set[str] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Literal):
            if node.type is FactType.STRING:
                found.add(str(node.value))
            elif node.type is FactType.STRING_SET:
                assert isinstance(node.value, tuple)
                found.update(node.value)
        elif isinstance(node, Not | Neg):
            stack.append(node.operand)
        elif isinstance(node, BoolOp | Compare | Arith):
            stack += [node.left, node.right]
        elif isinstance(node, In):
            stack += [node.item, node.container]
    return found


_LITERAL_TYPES: dict[FactType, type] = {
    FactType.INT: int,
    FactType.BOOL: bool,
    FactType.STRING: str,
    FactType.STRING_SET: tuple,
}


def check_fragment(expr: Expr) -> None:
    """Raise unless ``expr`` is a well-typed boolean condition inside the translated fragment.

    The parser admits only such conditions. This check keeps a tree built another way from
    being translated into a formula that means something else.

    Raises:
        UntranslatableError: naming the first node outside the fragment.
    """
    if type_of(expr) is not FactType.BOOL:
        raise UntranslatableError(f"a condition must be boolean, not {type_of(expr).value}")
    stack = [expr]
    while stack:
        node = stack.pop()
        problem = _node_problem(node)
        if problem:
            raise UntranslatableError(problem)
        if isinstance(node, Not | Neg):
            stack.append(node.operand)
        elif isinstance(node, BoolOp | Compare | Arith):
            stack += [node.left, node.right]
        elif isinstance(node, In):
            stack += [node.item, node.container]


def _node_problem(node: Expr) -> str | None:
    """Return why one node is outside the fragment, or None (its children are checked separately)."""
    if isinstance(node, Literal):
        value_type = _LITERAL_TYPES[node.type]
        if not isinstance(node.value, value_type) or (value_type is int and isinstance(node.value, bool)):
            return f"literal {node.value!r} is not a {node.type.value}"
        return None
    if isinstance(node, Fact | Has):
        spec = FACTS.get(node.name)
        if spec is None:
            return f"unknown fact {node.name!r}"
        if isinstance(node, Fact) and spec.type is not node.type:
            return f"fact {node.name} is a {spec.type.value}, not a {node.type.value}"
        return None
    if isinstance(node, Not):
        return None if type_of(node.operand) is FactType.BOOL else "'!' on a non-boolean"
    if isinstance(node, Neg):
        return None if type_of(node.operand) is FactType.INT else "unary '-' on a non-integer"
    if isinstance(node, BoolOp):
        operands_bool = type_of(node.left) is type_of(node.right) is FactType.BOOL
        return None if node.op in ("&&", "||") and operands_bool else f"boolean operator {node.op!r}"
    if isinstance(node, Arith):
        operands_int = type_of(node.left) is type_of(node.right) is FactType.INT
        linear = node.op in ("+", "-") or (
            node.op == "*" and (isinstance(node.left, Literal) or isinstance(node.right, Literal))
        )
        return (
            None if operands_int and linear else f"arithmetic {node.op!r} outside linear integer arithmetic"
        )
    if isinstance(node, Compare):
        left_type, right_type = type_of(node.left), type_of(node.right)
        if left_type is not right_type or left_type is FactType.STRING_SET:
            return f"comparison of {left_type.value} with {right_type.value}"
        if node.op in ("==", "!="):
            return None
        if node.op in ("<", "<=", ">", ">=") and left_type is FactType.INT:
            return None
        return f"comparison {node.op!r} on {left_type.value}"
    if isinstance(node, In):
        if type_of(node.item) is not FactType.STRING or type_of(node.container) is not FactType.STRING_SET:
            return "'in' needs a string and a string set"
        return None
    return f"unknown node {type(node).__name__}"


def ruleset_literals(ruleset: Ruleset) -> set[str]:
    found: set[str] = set()
    for rule in ruleset.rules:
        found |= string_literals(rule.expr)
    return found


def _fresh_strings(reserved: set[str], count: int) -> list[str]:
    fresh: list[str] = []
    number = 1
    while len(fresh) < count:
        candidate = f"other-{number}"
        if candidate not in reserved:
            fresh.append(candidate)
        number += 1
    return fresh


class Encoding:
    """SMT variables for every fact over one string universe, and the translation into them.

    Args:
        literals: every string literal of the expressions that will be translated.
        required: facts that are always present (by default those of every workload descriptor).
    """

    def __init__(self, literals: Iterable[str], *, required: Iterable[str] = DESCRIPTOR_REQUIRED) -> None:
        known = set(literals) | set(FACTS["workload.kind"].choices)
        self.literals = tuple(sorted(known))
        self.universe = self.literals + tuple(_fresh_strings(known, len(_FREE_STRING_FACTS)))
        self.index = {value: position for position, value in enumerate(self.universe)}
        self.required = frozenset(required)
        self.present: dict[str, Any] = {}
        self.value: dict[str, Any] = {}
        self.members: dict[str, list[Any]] = {}
        for name, spec in FACTS.items():
            self.present[name] = z3.BoolVal(True) if name in self.required else z3.Bool(f"has:{name}")
            if spec.type is FactType.BOOL:
                self.value[name] = z3.Bool(name)
            elif spec.type is FactType.STRING_SET:
                self.members[name] = [z3.Bool(f"{name}[{i}]") for i in range(len(self.universe))]
            else:
                self.value[name] = z3.Int(name)
        self.domain = self._domain()
        self._memo: dict[Expr, BoolPair | TermPair] = {}

    def _domain(self) -> list[Any]:
        constraints: list[Any] = []
        for name, spec in FACTS.items():
            if spec.type is FactType.INT:
                constraints.append(self.value[name] >= spec.minimum)
                constraints.append(self.value[name] <= spec.maximum)
            elif spec.type is FactType.STRING:
                allowed = [self.index[c] for c in spec.choices] if spec.choices else range(len(self.universe))
                if name.startswith(DESCRIPTOR_PREFIX):
                    allowed = [i for i in allowed if self.universe[i] != ""]
                constraints.append(z3.Or([self.value[name] == i for i in allowed]))
        return constraints

    @property
    def optional_facts(self) -> list[str]:
        return [name for name in FACTS if name not in self.required]

    def preferences(self) -> list[list[Any]]:
        """Return constraint sets for readable models, most preferred first.

        First every fact present and every free string outside the literals, then every fact
        present. A model that satisfies neither may still be a valid counterexample.
        """
        all_present = [self.present[name] for name in self.optional_facts]
        fresh_strings = [self.value[name] >= len(self.literals) for name in _FREE_STRING_FACTS]
        return [all_present + fresh_strings, all_present]

    # Translation of expressions.

    def condition(self, expr: Expr) -> BoolPair:
        """Check that a rule condition is inside the fragment, then translate it with :meth:`truth`.

        Raises:
            UntranslatableError: the condition is outside the fragment.
        """
        check_fragment(expr)
        return self.truth(expr)

    def truth(self, expr: Expr) -> BoolPair:
        """Translate a boolean expression into ``(is_true, is_false)``."""
        cached = self._memo.get(expr)
        if cached is None:
            cached = self._translate_bool(expr)
            self._memo[expr] = cached
        return cached

    def _translate_bool(self, expr: Expr) -> BoolPair:
        if isinstance(expr, Literal) and expr.type is FactType.BOOL:
            return z3.BoolVal(bool(expr.value)), z3.BoolVal(not expr.value)
        if isinstance(expr, Fact) and expr.type is FactType.BOOL:
            present = self.present[expr.name]
            value = self.value[expr.name]
            return z3.And(present, value), z3.And(present, z3.Not(value))
        if isinstance(expr, Has):
            present = self.present[expr.name]
            return present, z3.Not(present)
        if isinstance(expr, Not):
            is_true, is_false = self.truth(expr.operand)
            return is_false, is_true
        if isinstance(expr, BoolOp):
            left_true, left_false = self.truth(expr.left)
            right_true, right_false = self.truth(expr.right)
            if expr.op == "&&":
                return z3.And(left_true, right_true), z3.Or(left_false, right_false)
            if expr.op == "||":
                return z3.Or(left_true, right_true), z3.And(left_false, right_false)
            raise UntranslatableError(f"boolean operator {expr.op!r}")
        if isinstance(expr, Compare):
            return self._translate_compare(expr)
        if isinstance(expr, In):
            return self._translate_in(expr)
        raise UntranslatableError(f"{type(expr).__name__} is not a boolean expression")

    def _translate_compare(self, expr: Compare) -> BoolPair:
        left, left_ok = self._operand(expr.left)
        right, right_ok = self._operand(expr.right)
        ok = z3.And(left_ok, right_ok)
        if expr.op == "==":
            relation = left == right
        elif expr.op == "!=":
            relation = left != right
        elif expr.op == "<":
            relation = left < right
        elif expr.op == "<=":
            relation = left <= right
        elif expr.op == ">":
            relation = left > right
        elif expr.op == ">=":
            relation = left >= right
        else:
            raise UntranslatableError(f"comparison {expr.op!r}")
        return z3.And(ok, relation), z3.And(ok, z3.Not(relation))

    def _operand(self, expr: Expr) -> TermPair:
        """Translate a comparison operand of any scalar type into ``(term, ok)``."""
        if type_of(expr) is FactType.BOOL:
            is_true, is_false = self.truth(expr)
            return is_true, z3.Or(is_true, is_false)
        return self.term(expr)

    def _translate_in(self, expr: In) -> BoolPair:
        item, item_ok = self.term(expr.item)
        container = expr.container
        if isinstance(container, Literal) and container.type is FactType.STRING_SET:
            assert isinstance(container.value, tuple)
            member = z3.Or([item == self._string_index(value) for value in container.value])
            container_ok = z3.BoolVal(True)
        elif isinstance(container, Fact) and container.type is FactType.STRING_SET:
            bits = self.members[container.name]
            if isinstance(expr.item, Literal):
                member = bits[self._string_index(str(expr.item.value))]
            else:
                member = z3.Or([z3.And(item == position, bit) for position, bit in enumerate(bits)])
            container_ok = self.present[container.name]
        else:
            raise UntranslatableError(f"'in' over {type(container).__name__}")
        ok = z3.And(item_ok, container_ok)
        return z3.And(ok, member), z3.And(ok, z3.Not(member))

    def term(self, expr: Expr) -> TermPair:
        """Translate an integer or string expression into ``(term, ok)``."""
        cached = self._memo.get(expr)
        if cached is None:
            cached = self._translate_term(expr)
            self._memo[expr] = cached
        return cached

    def _translate_term(self, expr: Expr) -> TermPair:
        if isinstance(expr, Literal) and expr.type is FactType.INT:
            assert isinstance(expr.value, int)
            return z3.IntVal(expr.value), z3.BoolVal(True)
        if isinstance(expr, Literal) and expr.type is FactType.STRING:
            return z3.IntVal(self._string_index(str(expr.value))), z3.BoolVal(True)
        if isinstance(expr, Fact) and expr.type in (FactType.INT, FactType.STRING):
            return self.value[expr.name], self.present[expr.name]
        if isinstance(expr, Neg):
            operand, ok = self.term(expr.operand)
            return -operand, ok
        if isinstance(expr, Arith):
            left, left_ok = self.term(expr.left)
            right, right_ok = self.term(expr.right)
            ok = z3.And(left_ok, right_ok)
            if expr.op == "+":
                return left + right, ok
            if expr.op == "-":
                return left - right, ok
            if expr.op == "*" and (isinstance(expr.left, Literal) or isinstance(expr.right, Literal)):
                return left * right, ok
            raise UntranslatableError(f"arithmetic {expr.op!r} outside linear integer arithmetic")
        raise UntranslatableError(f"{type(expr).__name__} of type {getattr(expr, 'type', '?')} as a term")

    def _string_index(self, value: str) -> int:
        position = self.index.get(value)
        if position is None:
            raise UntranslatableError(f"string literal {value!r} is missing from the universe")
        return position

    # Rulesets.

    def allowed(self, ruleset: Ruleset) -> Any:
        """Return a z3 boolean that is true exactly when ``ruleset`` allows the workload."""
        _check_effects(ruleset)
        no_deny = [self.condition(r.expr)[1] for r in ruleset.rules if r.effect is Effect.DENY]
        some_allow = [self.condition(r.expr)[0] for r in ruleset.rules if r.effect is Effect.ALLOW]
        return z3.And(*no_deny, z3.Or(*some_allow)) if some_allow else z3.BoolVal(False)

    def decided_by(self, ruleset: Ruleset) -> Any:
        """Return a z3 integer: the position in ``ruleset.rules`` of the deciding rule, or -1."""
        _check_effects(ruleset)
        ordered = [(i, r) for i, r in enumerate(ruleset.rules) if r.effect is Effect.DENY]
        ordered += [(i, r) for i, r in enumerate(ruleset.rules) if r.effect is Effect.ALLOW]
        result: Any = z3.IntVal(-1)
        for position, rule in reversed(ordered):
            is_true, is_false = self.condition(rule.expr)
            fires = z3.Not(is_false) if rule.effect is Effect.DENY else is_true
            result = z3.If(fires, z3.IntVal(position), result)
        return result

    # Concrete assignments, in both directions.

    def assignment(self, facts: Mapping[str, Value], names: Iterable[str] = FACTS) -> list[tuple[Any, Any]]:
        """Return the substitution that fixes the variables of the facts ``names`` to ``facts``.

        Absent facts get presence false and an arbitrary value. Strings outside the literals map
        to fresh universe elements, distinct strings to distinct elements.
        """
        fresh = iter(range(len(self.literals), len(self.universe)))
        strings = {text: position for position, text in enumerate(self.literals)}
        for name in _FREE_STRING_FACTS:
            text = facts.get(name)
            if isinstance(text, str) and text not in strings:
                strings[text] = next(fresh)
        text_at = {position: text for text, position in strings.items()}

        pairs: list[tuple[Any, Any]] = []
        for name in names:
            spec = FACTS[name]
            present = name in facts
            if name not in self.required:
                pairs.append((self.present[name], z3.BoolVal(present)))
            value = facts.get(name)
            if spec.type is FactType.BOOL:
                pairs.append((self.value[name], z3.BoolVal(bool(value))))
            elif spec.type is FactType.INT:
                pairs.append((self.value[name], z3.IntVal(int(value) if present else 0)))  # type: ignore[arg-type]
            elif spec.type is FactType.STRING:
                pairs.append((self.value[name], z3.IntVal(strings.get(str(value), 0) if present else 0)))
            else:
                elements = set(value) if isinstance(value, tuple) else set()
                for position, bit in enumerate(self.members[name]):
                    pairs.append((bit, z3.BoolVal(text_at.get(position) in elements)))
        return pairs

    def evaluate(self, formula: Any, facts: Mapping[str, Value], names: Iterable[str] = FACTS) -> bool | int:
        """Evaluate a formula of this encoding under the fixed assignment of ``facts``.

        ``names`` may narrow the substitution to the facts the formula reads, which is faster.
        """
        result = z3.simplify(z3.substitute(formula, *self.assignment(facts, names)))
        if z3.is_true(result):
            return True
        if z3.is_false(result):
            return False
        if z3.is_int_value(result):
            return int(result.as_long())
        raise UntranslatableError(f"formula did not reduce to a constant: {result}")

    def facts_from_model(self, model: Any) -> dict[str, Value]:
        """Return the present facts of a z3 model, with universe indices turned back into strings."""
        facts: dict[str, Value] = {}
        for name, spec in FACTS.items():
            if not z3.is_true(model.eval(self.present[name], model_completion=True)):
                continue
            if spec.type is FactType.STRING_SET:
                bits = self.members[name]
                facts[name] = tuple(
                    self.universe[i]
                    for i, bit in enumerate(bits)
                    if z3.is_true(model.eval(bit, model_completion=True))
                )
                continue
            value = model.eval(self.value[name], model_completion=True)
            if spec.type is FactType.BOOL:
                facts[name] = z3.is_true(value)
            elif spec.type is FactType.INT:
                facts[name] = int(value.as_long())
            else:
                facts[name] = self.universe[int(value.as_long())]
        return facts


def _check_effects(ruleset: Ruleset) -> None:
    for rule in ruleset.rules:
        if not isinstance(rule.effect, Effect):
            raise UntranslatableError(f"rule {rule.id!r} has effect {rule.effect!r}, not allow or deny")


def encoding_for(rulesets: Sequence[Ruleset], extra: Sequence[Expr] = ()) -> Encoding:
    """Build an encoding whose universe covers the literals of ``rulesets`` and ``extra``."""
    literals: set[str] = set()
    for ruleset in rulesets:
        literals |= ruleset_literals(ruleset)
    for expr in extra:
        literals |= string_literals(expr)
    logger.debug("string universe: %d literals", len(literals))
    return Encoding(literals)
