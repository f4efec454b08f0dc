"""The registry's end-to-end scenario."""

from __future__ import annotations

import pytest

from flexheg.errors import InputError
from flexheg.registry import Registry
from flexheg.registry.demo import DemoDataCenter, DemoDevice, run_registry_demo
from flexheg.wire import SigningKey

from .factories import NOW


def test_demo_refuses_displaced_device(registry: Registry) -> None:
    devices = [DemoDevice(f"gpu-{i}", SigningKey.generate().public, "acme", "dc-ams")
               for i in range(4)]
    result = run_registry_demo(
        registry,
        data_centers=[DemoDataCenter("dc-ams", "acme", 52.37, 4.90, "NL")],
        devices=devices,
        seed="sha256:" + 64 * "1",
        away_device="gpu-2",
        away_location=(1.35, 103.82),
        licensing_state="NL",
        state_key=SigningKey.generate(),
        agreement_digest="sha256:" + 64 * "a",
        now=NOW,
    )
    assert result.refused["granted"] is False
    assert result.refused["reasons"] == ["away-from-registered-location"]
    assert result.granted is not None
    assert result.granted["granted"] is True
    assert result.observation["contradicts_registration"] is True
    assert len(result.inspection_round["inspections"]) == 5
    assert all(i["state"] == "recorded" for i in result.inspection_round["inspections"])
    assert [row["device_id"] for row in result.missing_report] == ["gpu-2"]
    assert registry.license_decisions("gpu-2")[0]["reasons"] == ["away-from-registered-location"]


def test_demo_checks_away_device(registry: Registry) -> None:
    with pytest.raises(InputError, match="away device"):
        run_registry_demo(registry, data_centers=[], devices=[], seed="s", away_device="x",
                          away_location=(0.0, 0.0), licensing_state="NL",
                          state_key=SigningKey.generate(), agreement_digest="sha256:" + 64 * "a",
                          now=NOW)
