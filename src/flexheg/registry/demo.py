"""The registry's part of the end-to-end treaty scenario.

:func:`run_registry_demo` registers data centers and devices, draws an inspection round from a
public seed, records the inspections, records that one device was found away from its registered
location, and attempts license renewals: the device in good standing gets a license, the
displaced device is refused with the recorded reason ``away-from-registered-location``.

Example::

    from flexheg.registry import Registry
    from flexheg.registry.demo import DemoDataCenter, DemoDevice, run_registry_demo
    from flexheg.wire import SigningKey

    registry = Registry.open("sqlite://")
    result = run_registry_demo(
        registry,
        data_centers=[DemoDataCenter("dc-ams", "acme", 52.37, 4.90, "NL")],
        devices=[DemoDevice("gpu-1", SigningKey.generate().public, "acme", "dc-ams"),
                 DemoDevice("gpu-2", SigningKey.generate().public, "acme", "dc-ams")],
        seed="sha256:" + 64 * "1",
        away_device="gpu-2",
        away_location=(1.35, 103.82),
        licensing_state="NL",
        state_key=SigningKey.generate(),
        agreement_digest="sha256:" + 64 * "a",
        now=1_800_000_000,
    )
    assert result.refused["reasons"] == ["away-from-registered-location"]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flexheg.errors import InputError
from flexheg.registry._entities import NewEntity
from flexheg.registry._registry import Registry
from flexheg.wire import PublicKey, SigningKey

logger = logging.getLogger(__name__)

DEMO_ACTOR = "international-body"
DEMO_INSPECTOR = "inspector-1"


@dataclass(frozen=True)
class DemoDataCenter:
    id: str
    owner: str
    latitude: float
    longitude: float
    region: str


@dataclass(frozen=True)
class DemoDevice:
    id: str
    identity_key: PublicKey
    owner: str
    data_center: str


@dataclass(frozen=True)
class RegistryDemoResult:
    """Outcome of the scenario: the round drawn, the displaced device's observation, and the
    license decisions (``granted`` is the first device in good standing, if there is one)."""

    inspection_round: dict[str, Any]
    observation: dict[str, Any]
    refused: dict[str, Any]
    granted: dict[str, Any] | None
    missing_report: list[dict[str, Any]]


def run_registry_demo(
    registry: Registry,
    *,
    data_centers: Sequence[DemoDataCenter],
    devices: Sequence[DemoDevice],
    seed: str,
    away_device: str,
    away_location: tuple[float, float],
    licensing_state: str,
    state_key: SigningKey,
    agreement_digest: str,
    now: int,
) -> RegistryDemoResult:
    """Run the registry scenario on ``registry`` at time ``now`` and return what happened."""
    sites = {site.id: site for site in data_centers}
    if away_device not in {device.id for device in devices}:
        raise InputError(f"away device {away_device!r} is not among the demo devices")

    # Register the data centers, then each device at its data center's location.
    for site in data_centers:
        registry.register(
            NewEntity.build(id=site.id, kind="data-center", owner=site.owner,
                            latitude=site.latitude, longitude=site.longitude, region=site.region),
            actor=DEMO_ACTOR, now=now)
    for device in devices:
        host = sites.get(device.data_center)
        if host is None:
            raise InputError(f"device {device.id!r} names unknown data center {device.data_center!r}")
        registry.register(
            NewEntity.build(id=device.id, kind="device", owner=device.owner,
                            latitude=host.latitude, longitude=host.longitude, region=host.region,
                            site_id=host.id, identity_key=device.identity_key),
            actor=DEMO_ACTOR, now=now)
        registry.record_attestation(device.id, tick=now, actor="verifier", now=now)

    # Draw an inspection round and record what the inspector found.
    round_ = registry.draw_inspection_round(
        seed=seed, sample_size=len(devices) + len(data_centers), actor=DEMO_ACTOR, now=now
    )
    for inspection in round_["inspections"]:
        registry.record_inspection(inspection["entity_id"], seen=True, seals_intact=True,
                                   round_id=round_["id"], inspector=DEMO_INSPECTOR, now=now)

    # The displaced device.
    latitude, longitude = away_location
    observation = registry.record_location(away_device, latitude=latitude, longitude=longitude,
                                           source="inspector", actor=DEMO_INSPECTOR, now=now)

    # License renewals.
    refused = registry.renew_license(away_device, licensing_state=licensing_state,
                                     signing_key=state_key, agreement_digest=agreement_digest,
                                     actor=licensing_state, now=now)
    granted = None
    others = [device.id for device in devices if device.id != away_device]
    if others:
        granted = registry.renew_license(others[0], licensing_state=licensing_state,
                                         signing_key=state_key, agreement_digest=agreement_digest,
                                         actor=licensing_state, now=now)
    logger.info("registry demo finished: %s refused (%s)", away_device, ", ".join(refused["reasons"]))
    return RegistryDemoResult(
        inspection_round=registry.inspection_round(round_["id"]),
        observation=observation,
        refused=refused,
        granted=granted,
        missing_report=registry.missing_report(now=now),
    )
