"""Inspection rounds, inspection results and power-log checks."""

from __future__ import annotations

from typing import Any

import pytest

from flexheg.errors import InputError
from flexheg.registry import NotFoundError, Registry, select_sample
from flexheg.wire import encode, sha256_digest

from .factories import NOW, data_center, device

GENESIS = "sha256:" + 64 * "0"


def power_log(events: list[tuple[str, int]]) -> tuple[list[dict[str, Any]], str]:
    """Build a chained power log as a device keeps it; return the entries and the head."""
    entries: list[dict[str, Any]] = []
    previous = GENESIS
    for seq, (event, tick) in enumerate(events):
        entry = {"seq": seq, "event": event, "tick": tick, "prev": previous}
        entries.append(entry)
        previous = sha256_digest(encode(entry))
    return entries, previous


def test_round_matches_public_recomputation(populated: Registry) -> None:
    drawn = populated.draw_inspection_round(seed="checkpoint-1", sample_size=2, actor="ib", now=NOW)
    population = [(e["id"], e["kind"], e["risk_weight"]) for e in populated.list_entities()]
    selected, digest = select_sample("checkpoint-1", population, 2)
    assert drawn["selection_digest"] == digest
    assert sorted(i["entity_id"] for i in drawn["inspections"]) == sorted(e for _, e in selected)
    assert drawn["population"] == 4
    assert all(i["state"] == "planned" for i in drawn["inspections"])


def test_round_excludes_inactive(populated: Registry) -> None:
    populated.update("gpu-1", {"status": "closed"}, actor="ib", reason="retired", now=NOW)
    drawn = populated.draw_inspection_round(seed="s", sample_size=10, actor="ib", now=NOW)
    assert "gpu-1" not in {i["entity_id"] for i in drawn["inspections"]}
    assert len(drawn["inspections"]) == 3


def test_round_rejects_bad_parameters(populated: Registry) -> None:
    with pytest.raises(InputError, match="seed"):
        populated.draw_inspection_round(seed=" ", sample_size=1, actor="ib", now=NOW)
    with pytest.raises(InputError, match="sample size"):
        populated.draw_inspection_round(seed="s", sample_size=0, actor="ib", now=NOW)


def test_missing_device_marked_and_restored(populated: Registry) -> None:
    drawn = populated.draw_inspection_round(seed="s", sample_size=4, actor="ib", now=NOW)
    result = populated.record_inspection("gpu-2", seen=False, round_id=drawn["id"],
                                         inspector="insp", now=NOW + 5)
    assert result["problems"] == ["not-seen"]
    assert populated.get("gpu-2")["status"] == "missing"
    with pytest.raises(InputError, match="already recorded"):
        populated.record_inspection("gpu-2", seen=True, round_id=drawn["id"], inspector="insp",
                                    now=NOW + 6)
    populated.record_inspection("gpu-2", seen=True, inspector="insp", now=NOW + 7)
    assert populated.get("gpu-2")["status"] == "active"
    assert [c["action"] for c in populated.history("gpu-2")][-2:] == ["inspection", "inspection"]


def test_inspection_outside_round_sample(populated: Registry) -> None:
    drawn = populated.draw_inspection_round(seed="s", sample_size=1, actor="ib", now=NOW)
    chosen = drawn["inspections"][0]["entity_id"]
    other = next(e for e in ("gpu-1", "gpu-2", "gpu-3", "dc-1") if e != chosen)
    with pytest.raises(NotFoundError, match="not drawn"):
        populated.record_inspection(other, seen=True, round_id=drawn["id"], inspector="i", now=NOW)


def test_broken_seals_flag_custody(populated: Registry) -> None:
    result = populated.record_inspection("gpu-1", seen=True, seals_intact=False, inspector="i", now=NOW)
    assert result["problems"] == ["seals-broken"]
    assert populated.get("gpu-1")["custody_problem"] == "seals broken at inspection"


def test_power_log_gaps_need_explanation(populated: Registry) -> None:
    entries, head = power_log([("power-on", NOW - 9000), ("power-off", NOW - 8000),
                               ("power-on", NOW - 7900), ("power-off", NOW - 7000),
                               ("power-on", NOW - 2000)])
    result = populated.record_inspection("gpu-1", seen=True, seals_intact=True, power_log=entries,
                                         power_log_head=head, power_log_count=5, inspector="i",
                                         now=NOW)
    assert result["power_log_checked"] is True
    assert result["problems"] == [f"unexplained-power-off: {NOW - 7000}..{NOW - 2000}"]
    periods = populated.power_off_periods("gpu-1")
    assert [(p["off_tick"], p["on_tick"]) for p in periods] == [(NOW - 7000, NOW - 2000)]

    with pytest.raises(NotFoundError):
        populated.explain_power_off("gpu-1", off_tick=NOW - 7000, explanation="x", owner="globex",
                                    now=NOW)
    populated.explain_power_off("gpu-1", off_tick=NOW - 7000, explanation="grid maintenance",
                                owner="acme", now=NOW + 1)
    with pytest.raises(InputError, match="already explained"):
        populated.explain_power_off("gpu-1", off_tick=NOW - 7000, explanation="again",
                                    owner="acme", now=NOW + 2)
    again = populated.record_inspection("gpu-1", seen=True, power_log=entries, power_log_head=head,
                                        power_log_count=5, inspector="i", now=NOW + 3)
    assert again["problems"] == []


def test_power_log_still_off_counts_until_now(populated: Registry) -> None:
    entries, head = power_log([("power-on", NOW - 9000), ("power-off", NOW - 5000)])
    result = populated.record_inspection("gpu-1", seen=True, power_log=entries, power_log_head=head,
                                         power_log_count=2, inspector="i", now=NOW)
    assert result["problems"] == [f"unexplained-power-off: {NOW - 5000}..None"]


@pytest.mark.parametrize("tamper", ["drop", "edit", "count", "head"])
def test_power_log_tampering_detected(populated: Registry, tamper: str) -> None:
    entries, head = power_log([("power-on", NOW - 9000), ("power-off", NOW - 8000),
                               ("power-on", NOW - 100)])
    count = 3
    if tamper == "drop":
        del entries[1]
        entries[1]["seq"] = 1
        count = 2
    elif tamper == "edit":
        entries[1]["tick"] = NOW - 8500
    elif tamper == "count":
        count = 4
    else:
        head = "sha256:" + 64 * "1"
    result = populated.record_inspection("gpu-1", seen=True, power_log=entries,
                                         power_log_head=head, power_log_count=count,
                                         inspector="i", now=NOW)
    assert result["power_log_checked"] is False
    assert result["problems"][0].startswith("power-log-rejected")
    assert populated.get("gpu-1")["custody_problem"] == "power log rejected at inspection"


def test_power_log_needs_head_and_device(populated: Registry) -> None:
    entries, head = power_log([("power-on", NOW)])
    with pytest.raises(InputError, match="head and count"):
        populated.record_inspection("gpu-1", seen=True, power_log=entries, inspector="i", now=NOW)
    with pytest.raises(InputError, match="only devices"):
        populated.record_inspection("dc-1", seen=True, power_log=entries, power_log_head=head,
                                    power_log_count=1, inspector="i", now=NOW)


def test_location_observation(registry: Registry) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    registry.register(device("gpu-1"), actor="ib", now=NOW)
    near = registry.record_location("gpu-1", latitude=52.40, longitude=4.95, source="inspector",
                                    actor="i", now=NOW)
    assert near["contradicts_registration"] is False
    far = registry.record_location("gpu-1", latitude=48.85, longitude=2.35, source="landmark",
                                   actor="i", now=NOW + 10)
    assert far["contradicts_registration"] is True
    assert 420 < far["distance_km"] < 450
    assert registry.get("gpu-1")["away_since"] == NOW + 10
    registry.record_location("gpu-1", latitude=48.85, longitude=2.35, source="landmark", actor="i",
                             now=NOW + 20)
    assert registry.get("gpu-1")["away_since"] == NOW + 10
    registry.record_location("gpu-1", latitude=52.37, longitude=4.90, source="inspector", actor="i",
                             now=NOW + 30)
    assert registry.get("gpu-1")["away_since"] is None


def test_round_id_out_of_range_not_found(populated: Registry) -> None:
    with pytest.raises(NotFoundError):
        populated.inspection_round(2**53)
    with pytest.raises(NotFoundError):
        populated.record_inspection("gpu-1", seen=True, round_id=2**40, inspector="i", now=NOW)
