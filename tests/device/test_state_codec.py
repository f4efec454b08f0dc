"""The device state codec: round trips of reachable states and strict parsing of altered ones."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _parties import BLOCS, DAY, START, Parties, workload
from flexheg.device import DeviceState, admit, attest, extend, install, meter, power_event
from flexheg.errors import InputError, Rejected
from flexheg.policy import Action
from flexheg.wire import SigningKey, decode, encode

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PARTIES = Parties()
IDENTITY = SigningKey.generate()

steps = st.lists(
    st.one_of(
        st.tuples(st.just("install"), st.integers(1, 5), st.sampled_from([DAY, 10 * DAY])),
        st.tuples(st.just("extend"), st.integers(1, 4), st.sampled_from([3600, DAY])),
        st.tuples(st.just("admit"), st.sampled_from(["r1", "r2", "007"]), st.integers(0, 10**30)),
        st.tuples(st.just("meter"), st.sampled_from(["r1", "r2", "007"]), st.integers(0, 10**6)),
        st.tuples(st.just("clock"), st.just(""), st.integers(0, 5 * DAY)),
        st.tuples(st.just("power"), st.sampled_from(["power-off", "power-on"]), st.just(0)),
        st.tuples(st.just("attest"), st.text(min_size=1, max_size=8), st.just(0)),
    ),
    max_size=12,
)


def reachable_state(plan: list[tuple[str, Any, int]]) -> DeviceState:
    """Run ``plan`` on the pure processor and return the state it reaches."""
    state = PARTIES.state()
    now = START
    latest: bytes | None = None
    for kind, first, second in plan:
        try:
            if kind == "install":
                latest = PARTIES.update(first, issued_at=now, lifetime=second)
                state, _ = install(state, latest, PARTIES.approve(latest), now)
            elif kind == "extend" and latest is not None:
                extension = PARTIES.extension(latest, serial=first, add=second)
                state, _ = extend(state, extension, PARTIES.approve(extension, Action.EXTEND, BLOCS[:2]), now)
            elif kind == "admit":
                state, _ = admit(state, {**workload(first, second), "workload.evals_passed": ("a", "b")}, now)
            elif kind == "meter":
                state, _ = meter(state, first, second, now)
            elif kind == "clock":
                now += second
            elif kind == "power":
                state = power_event(state, first, now)
            elif kind == "attest":
                state, _ = attest(state, IDENTITY, first, now)
        except Rejected:
            continue
    return state


@SETTINGS
@given(steps)
def test_round_trip(plan: list[tuple[str, Any, int]]) -> None:
    state = reachable_state(plan)
    data = encode(state.to_dict())
    parsed = DeviceState.from_dict(decode(data, what="state"))
    assert parsed == state
    assert encode(parsed.to_dict()) == data


def test_round_trip_keeps_fact_types() -> None:
    """Integer facts survive as integers, digit-only string facts stay strings."""
    state = PARTIES.state()
    update = PARTIES.update(1)
    state, _ = install(state, update, PARTIES.approve(update), START)
    big = {**workload("007", 10**30, kind="inference"), "workload.evals_passed": ("a", "b")}
    state, result = admit(state, big, START)
    assert result.decision.allowed
    parsed = DeviceState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert parsed == state
    assert parsed.runs["007"].facts["workload.run_id"] == "007"
    assert parsed.runs["007"].facts["workload.flop"] == 10**30
    assert parsed.runs["007"].flop_used == 10**30
    assert parsed.runs["007"].facts["workload.evals_passed"] == ("a", "b")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += _paths(item, (*prefix, index))
    return paths


BASE_STATE = reachable_state(
    [("install", 1, DAY), ("admit", "r1", 5), ("extend", 1, 3600), ("power", "power-off", 0)]
)
BASE = BASE_STATE.to_dict()
PATHS = _paths(BASE)


@SETTINGS
@given(st.sampled_from(PATHS), json_values)
def test_altered_field_raises_only_input_error(path: tuple[Any, ...], value: Any) -> None:
    """A state whose MAC an attacker recomputed still parses strictly: InputError or a valid state."""
    document = json.loads(json.dumps(BASE))
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with contextlib.suppress(InputError):
        DeviceState.from_dict(document)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("agreement",), "not base64!"),
        (("installed", "payload"), "###"),
        (("runs", "r1", "flop_used"), "-5"),
        (("counters", "installs"), -1),
        (("highest_version",), 0),
        (("clock_offset",), "0"),
    ],
)
def test_altered_field_table(path: tuple[Any, ...], value: Any) -> None:
    document = json.loads(json.dumps(BASE))
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(InputError):
        DeviceState.from_dict(document)


def test_unknown_state_field_rejected() -> None:
    with pytest.raises(InputError, match="unknown field"):
        DeviceState.from_dict({**BASE, "debug": True})


def test_payload_is_base64_of_update() -> None:
    assert BASE_STATE.installed is not None
    assert base64.b64decode(BASE["installed"]["payload"]) == BASE_STATE.installed.payload
