"""The location chapter of ``flexheg demo``: a region-locked device that is moved in secret.

A landmark at the eastern data center answers signed challenges over UDP on loopback, and link
emulators hold each datagram for the propagation delay of the device's true distance. The device
proves it is inside its data center's region and runs a training job. It is then moved in secret
about 1400 km away: once its old proof expires, the round trip it can now achieve no longer
proves the region, so the region-locked rules deny its workloads. An inspection round finds the
device away from its registered location, and the registry refuses to renew its license.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from flexheg.authority import sign_approval
from flexheg.device import Agreement, AgreementKind, Device, DeviceCertificate
from flexheg.device.location import Disc, GeoPoint, Landmark, LocationPolicy, Region, great_circle_distance_m
from flexheg.location import prove_location
from flexheg.location.link import LinkEmulator, propagation_delay_ns
from flexheg.location.server import LandmarkServer
from flexheg.policy import Action, Approver, ApproverKey, Policy
from flexheg.rules import RulesetUpdate, load_rules_file
from flexheg.wire import Envelope, PublicKey, SigningKey, sha256_digest

DAY = 86400
DATA_CENTER_EAST = (50.11, 8.68)
SECRET_SITE = (40.42, -3.70)
REGION_RADIUS_M = 500_000
MAX_PROOF_AGE_S = 3600

REGION_RULES = """\
[[rule]]
id = "region-lock"
effect = "deny"
when = '!location.verified || location.region != "dc-east"'
reason = "the device must prove that it is inside the dc-east region"

[[rule]]
id = "declared-work"
effect = "allow"
when = "workload.cluster_size <= 100000"
reason = "declared workloads on up to 100000 accelerators may run"
"""

Check = Callable[[str, str, str], None]


@contextmanager
def _serving(*servers: LandmarkServer | LinkEmulator) -> Iterator[None]:
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for server in servers:
            server.stop()
        for thread in threads:
            thread.join(timeout=5)


def run_location_chapter(
    folder: Path,
    *,
    keys: dict[str, SigningKey],
    blocs: Sequence[str],
    manufacturer: SigningKey,
    host_clock: Callable[[], float],
    advance: Callable[[int], None],
    check: Check,
    identity_keys: dict[str, PublicKey],
) -> None:
    """Play the chapter; ``advance`` moves the world clock forward by a number of seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    landmark_key = SigningKey.generate()
    east = GeoPoint.from_degrees(*DATA_CENTER_EAST)
    landmark = Landmark("landmark-east", landmark_key.public, east, 2_000)
    policy = LocationPolicy(
        landmarks={landmark.id: landmark},
        regions=(Region("dc-east", Disc(east, REGION_RADIUS_M)),),
        max_proof_age_s=MAX_PROOF_AGE_S,
    )
    agreement = Agreement(
        name="flexheg demo treaty with region locks",
        kind=AgreementKind.RULESET,
        approvers=tuple(Approver(b, 1, (ApproverKey(keys[b].public),)) for b in blocs),
        policies={a: Policy("all") for a in Action},
        manufacturers=(manufacturer.public,),
        baseline=None,
        max_lifetime=90 * DAY,
        max_extension=60 * DAY,
        extra={"location": policy.to_dict()},
    )
    payload = agreement.encode()
    digest = sha256_digest(payload)
    (folder / "agreement.json").write_bytes(payload)
    rules_path = folder / "region-lock.toml"
    rules_path.write_text(REGION_RULES, encoding="utf-8")
    update = RulesetUpdate(digest, 1, int(host_clock()), 90 * DAY, load_rules_file(rules_path)).encode()
    approvals = [
        sign_approval(
            keys[b],
            approver=b,
            agreement=digest,
            action=Action.INSTALL,
            subject=sha256_digest(update),
            serial=1000,
            now=int(host_clock()),
        )
        for b in blocs
    ]
    device = Device.provision(
        folder / "dc-east-05",
        agreement_payload=payload,
        manufacturer_key=manufacturer,
        device_id="dc-east-05",
        host_clock=host_clock,
    )
    device.install(update, approvals)

    server = LandmarkServer(landmark_key, landmark.id, processing_us=1_000, tick=lambda: int(host_clock()))
    secret = GeoPoint.from_degrees(*SECRET_SITE)
    far_m = int(great_circle_distance_m(east, secret))
    near_link = LinkEmulator(server.address, propagation_delay_ns(20_000))
    far_link = LinkEmulator(server.address, propagation_delay_ns(far_m))
    training = {
        "workload.kind": "training",
        "workload.run_id": "east-run",
        "workload.flop": 10**23,
        "workload.cluster_size": 1024,
        "workload.interconnect_gbps": 400,
    }

    def measure_through(link: LinkEmulator) -> Callable[[SigningKey, LocationPolicy, int], Envelope]:
        def measure(identity: SigningKey, policy: LocationPolicy, now: int) -> Envelope:
            return prove_location(
                link.address,
                policy.landmark(landmark.id),
                sign_key=identity,
                clock_ns=time.monotonic_ns,
                now=now,
                rounds=7,
            )

        return measure

    with _serving(server, near_link, far_link):
        status = device.prove_location(measure_through(near_link))
        check(
            "a device 20 km from its landmark proves it is in its data center's region",
            "dc-east",
            status.region or f"unverified: {status.message}",
        )
        result = device.admit(training)
        check(
            "the region-locked ruleset admits its training run",
            "allowed",
            "allowed" if result.decision.allowed else f"denied: {result.reason_code}",
        )

        advance(MAX_PROOF_AGE_S + 60)
        status = device.prove_location(measure_through(far_link))
        check(
            f"moved in secret {far_m // 1000} km away, the device can no longer prove its region",
            "outside-region",
            status.reason.value if status.reason else f"inside {status.region}",
        )
        result = device.admit(dict(training, **{"workload.run_id": "secret-run"}))
        check(
            "its workloads are denied by the region lock",
            "denied: outside-region",
            "allowed" if result.decision.allowed else f"denied: {result.reason_code}",
        )

    moved = device.certificate().statement(DeviceCertificate, what="certificate").identity_key
    _registry_round(folder, {**identity_keys, "dc-east-05": moved}, digest, host_clock, check)


def _registry_round(
    folder: Path,
    identity_keys: dict[str, PublicKey],
    agreement_digest: str,
    host_clock: Callable[[], float],
    check: Check,
) -> None:
    from flexheg.registry import Registry  # noqa: PLC0415 - SQLAlchemy loads only for this chapter
    from flexheg.registry.demo import DemoDataCenter, DemoDevice, run_registry_demo  # noqa: PLC0415

    registry = Registry.open(f"sqlite:///{folder / 'registry.db'}")
    try:
        devices = []
        for device_id, identity_key in identity_keys.items():
            data_center = "dc-east" if device_id.startswith("dc-east") else "dc-west"
            owner = "bloc-a" if data_center == "dc-east" else "bloc-b"
            devices.append(DemoDevice(device_id, identity_key, owner, data_center))
        result = run_registry_demo(
            registry,
            data_centers=[
                DemoDataCenter("dc-east", "bloc-a", *DATA_CENTER_EAST, "DE"),
                DemoDataCenter("dc-west", "bloc-b", 48.86, 2.35, "FR"),
            ],
            devices=devices,
            seed=agreement_digest,
            away_device="dc-east-05",
            away_location=SECRET_SITE,
            licensing_state="state-de",
            state_key=SigningKey.generate(),
            agreement_digest=agreement_digest,
            now=int(host_clock()),
        )
        inspected = len(result.inspection_round["inspections"])
        check(
            f"an inspection round drawn from a public seed visits {inspected} registered entities",
            "recorded",
            "recorded" if inspected else "no inspections",
        )
        verdict = "granted" if result.refused.get("granted") else "refused"
        check(
            "the registry flags the moved device and refuses to renew its license",
            "refused: away-from-registered-location",
            f"{verdict}: {', '.join(result.refused['reasons'])}",
        )
        granted = result.granted or {}
        check(
            "a device in good standing gets its license renewed",
            "granted",
            "granted" if granted.get("granted") else f"refused: {granted.get('reasons')}",
        )
    finally:
        registry.close()
