"""Hypothesis strategies and random generators for well-typed rule expressions, rulesets and facts."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from flexheg.rules import (
    FACTS,
    Arith,
    BoolOp,
    Compare,
    Effect,
    Expr,
    Fact,
    FactType,
    Has,
    In,
    Literal,
    Neg,
    Not,
    Rule,
    Ruleset,
    Value,
    to_source,
)

STRING_POOL = (
    "training",
    "inference",
    "eu",
    "us",
    "safety-v1",
    "bio-v2",
    "",
    "a b",
    'q"uo\\te',
    "line\nbreak",
)
"""String literals the generators use: workload kinds, region and eval names, and awkward text."""

INT_POOL = (0, 1, 2, 7, 8, 100, 10**6, 10**8, 10**24, 10**25, 3 * 10**25, 10**32)

_FACTS_BY_TYPE = {
    fact_type: tuple(sorted(name for name, spec in FACTS.items() if spec.type is fact_type))
    for fact_type in FactType
}


def facts_of(fact_type: FactType) -> st.SearchStrategy[Expr]:
    return st.sampled_from(_FACTS_BY_TYPE[fact_type]).map(lambda name: Fact(name, fact_type))


def int_exprs(depth: int) -> st.SearchStrategy[Expr]:
    leaves = st.one_of(
        st.sampled_from(INT_POOL).map(lambda value: Literal(value, FactType.INT)),
        st.integers(0, 10**9).map(lambda value: Literal(value, FactType.INT)),
        facts_of(FactType.INT),
    )
    if depth <= 0:
        return leaves
    inner = int_exprs(depth - 1)
    literal = st.integers(0, 1000).map(lambda value: Literal(value, FactType.INT))
    return st.one_of(
        leaves,
        inner.map(Neg),
        st.builds(Arith, st.sampled_from(("+", "-")), inner, inner),
        st.builds(Arith, st.just("*"), literal, inner),
        st.builds(Arith, st.just("*"), inner, literal),
    )


def string_exprs() -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.sampled_from(STRING_POOL).map(lambda value: Literal(value, FactType.STRING)),
        facts_of(FactType.STRING),
    )


def set_exprs() -> st.SearchStrategy[Expr]:
    literal = st.lists(st.sampled_from(STRING_POOL), max_size=4).map(
        lambda items: Literal(tuple(items), FactType.STRING_SET)
    )
    return st.one_of(literal, facts_of(FactType.STRING_SET))


def bool_exprs(depth: int) -> st.SearchStrategy[Expr]:
    """Well-typed boolean expressions of at most ``depth`` nested operators."""
    leaves = st.one_of(
        st.booleans().map(lambda value: Literal(value, FactType.BOOL)),
        facts_of(FactType.BOOL),
        st.sampled_from(sorted(FACTS)).map(Has),
        st.builds(Compare, st.sampled_from(("==", "!=", "<", "<=", ">", ">=")), int_exprs(0), int_exprs(0)),
        st.builds(Compare, st.sampled_from(("==", "!=")), string_exprs(), string_exprs()),
        st.builds(In, string_exprs(), set_exprs()),
    )
    if depth <= 0:
        return leaves
    inner = bool_exprs(depth - 1)
    return st.one_of(
        leaves,
        inner.map(Not),
        st.builds(BoolOp, st.sampled_from(("&&", "||")), inner, inner),
        st.builds(Compare, st.sampled_from(("==", "!=", "<", "<=", ">", ">=")), int_exprs(2), int_exprs(2)),
        st.builds(Compare, st.sampled_from(("==", "!=")), inner, inner),
    )


def make_rule(index: int, effect: Effect, expr: Expr) -> Rule:
    return Rule(f"r{index}", effect, to_source(expr), f"reason {index}", expr)


def rulesets(max_rules: int = 6, depth: int = 3) -> st.SearchStrategy[Ruleset]:
    rule_specs = st.lists(
        st.tuples(st.sampled_from(list(Effect)), bool_exprs(depth)), min_size=0, max_size=max_rules
    )
    return rule_specs.map(lambda specs: Ruleset([make_rule(i, e, x) for i, (e, x) in enumerate(specs)]))


def int_literals(ruleset: Ruleset) -> set[int]:
    found: set[int] = set()
    for rule in ruleset.rules:
        stack: list[Expr] = [rule.expr]
        while stack:
            node = stack.pop()
            if isinstance(node, Literal) and node.type is FactType.INT:
                assert isinstance(node.value, int)
                found.add(node.value)
            elif isinstance(node, Not | Neg):
                stack.append(node.operand)
            elif isinstance(node, BoolOp | Compare | Arith):
                stack += [node.left, node.right]
            elif isinstance(node, In):
                stack += [node.item, node.container]
    return found


def random_facts(rng: random.Random, ruleset: Ruleset, *, presence: float) -> dict[str, Value]:
    """Draw facts within their declared bounds, each present with probability ``presence``.

    Integers come near the ruleset's literals and the bounds, so that comparisons go both ways.
    Strings share a small pool, so that equality between facts and literals is common.
    """
    near = sorted({v + d for v in int_literals(ruleset) | set(INT_POOL) for d in (-1, 0, 1)})
    strings = [*STRING_POOL, "zz", "yy", "xx", "other-1"]
    facts: dict[str, Value] = {}
    for name, spec in FACTS.items():
        if rng.random() >= presence:
            continue
        value: Any
        if spec.type is FactType.INT:
            candidates = [v for v in near if spec.minimum <= v <= spec.maximum]
            value = rng.choice(candidates) if rng.random() < 0.8 else rng.randint(spec.minimum, spec.maximum)
        elif spec.type is FactType.BOOL:
            value = rng.random() < 0.5
        elif spec.type is FactType.STRING:
            value = rng.choice(spec.choices or strings)
        else:
            value = tuple(rng.sample(strings, rng.randint(0, 4)))
        facts[name] = value
    return facts
