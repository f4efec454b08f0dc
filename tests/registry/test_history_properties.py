"""Property: replaying an entity's recorded changes reproduces its current state."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flexheg.registry import Registry

from .factories import NOW, data_center, device

_operations = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.fixed_dictionaries({}, optional={
            "owner": st.sampled_from(["acme", "globex", "initech"]),
            "risk_weight": st.integers(1, 100),
            "status": st.sampled_from(["active", "missing", "closed"]),
            "description": st.text(max_size=20),
        })),
        st.tuples(st.just("attest"), st.integers(0, 1000)),
        st.tuples(st.just("locate"), st.tuples(st.floats(-90, 90), st.floats(-180, 180))),
        st.tuples(st.just("inspect"), st.booleans()),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(_operations)
def test_history_replays_to_current_state(operations: list[tuple[str, Any]]) -> None:
    registry = Registry.open("sqlite://")
    try:
        registry.register(data_center(), actor="ib", now=NOW)
        registry.register(device("gpu-1"), actor="ib", now=NOW)
        now = NOW
        for kind, argument in operations:
            now += 10
            if kind == "update":
                registry.update("gpu-1", argument, actor="ib", reason="r", now=now)
            elif kind == "attest":
                registry.record_attestation("gpu-1", tick=now - argument % 10, actor="v", now=now)
            elif kind == "locate":
                registry.record_location("gpu-1", latitude=argument[0], longitude=argument[1],
                                         source="inspector", actor="i", now=now)
            else:
                registry.record_inspection("gpu-1", seen=argument, inspector="i", now=now)

        history = registry.history("gpu-1")
        replayed = dict(history[0]["new"])
        for change in history[1:]:
            for column, old in change["old"].items():
                assert replayed[column] == old
            replayed.update(change["new"])
        current = registry.get("gpu-1")
        for column in ("owner", "risk_weight", "status", "description", "last_attested_at",
                       "attestation_count", "away_since", "custody_problem"):
            assert replayed[column] == current[column], column
        assert current["version"] == len(history)
    finally:
        registry.close()
