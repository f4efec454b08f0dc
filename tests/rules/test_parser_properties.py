"""Property tests of the rule parser: round trips through to_source, and garbage input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexheg.errors import InputError
from flexheg.rules import Compare, Effect, Expr, FactType, Literal, Ruleset, parse_expression, to_source
from flexheg.rules._parser import MAX_TREE_DEPTH

from .strategies import bool_exprs, make_rule

_TOKENS = (
    "workload.flop",
    "workload.kind",
    "workload.evals_passed",
    "device.licensed",
    "caps.x",
    "has(",
    "(",
    ")",
    "[",
    "]",
    ",",
    "&&",
    "||",
    "!",
    "-",
    "+",
    "*",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    " in ",
    "1e25",
    "0",
    "1.5",
    "1e999999",
    '"eu"',
    "'x'",
    '"\\q"',
    '"',
    "true",
    "false",
    "size(",
    "?",
    ":",
    " ",
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bool_exprs(4))
def test_round_trip_through_source(expr: Expr) -> None:
    source = to_source(expr)
    assert parse_expression(source) == expr
    assert to_source(parse_expression(source)) == source


@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_only_input_error(source: str) -> None:
    with contextlib.suppress(InputError):
        parse_expression(source, caps={"x": 5})


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join))
def test_token_soup_raises_only_input_error(source: str) -> None:
    try:
        expr = parse_expression(source, caps={"x": 5})
    except InputError:
        return
    assert parse_expression(to_source(expr), caps={"x": 5}) == expr


@pytest.mark.parametrize("operator", ["+", "&&", "||"])
def test_long_operator_chain_is_input_error(operator: str) -> None:
    term = "workload.flop" if operator == "+" else "device.licensed"
    chain = operator.join([term] * (MAX_TREE_DEPTH + 5))
    source = f"{chain} > 0" if operator == "+" else chain
    with pytest.raises(InputError, match="operators deep"):
        parse_expression(source)


def test_chain_at_depth_limit_compiles() -> None:
    source = "+".join(["workload.flop"] * (MAX_TREE_DEPTH - 2)) + " > 0"
    expr = parse_expression(source)
    ruleset = Ruleset([make_rule(0, Effect.ALLOW, expr)])
    assert ruleset.decide({"workload.flop": 1}).allowed


@pytest.mark.parametrize("number", ["1e999999", "1e99999999999", "1" + "0" * 40])
def test_huge_number_is_input_error(number: str) -> None:
    with pytest.raises(InputError, match="above the largest allowed number"):
        parse_expression(f"workload.flop < {number}")


def test_newline_in_string_round_trips() -> None:
    expr = parse_expression('device.id == "a\\nb"')
    assert parse_expression(to_source(expr)) == expr
    assert isinstance(expr, Compare)
    assert expr.right == Literal("a\nb", FactType.STRING)
