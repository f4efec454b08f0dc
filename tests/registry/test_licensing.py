"""License renewal decisions and the missing-chip report."""

from __future__ import annotations

import pytest

from flexheg.device.license import OperatingLicense, verify_license
from flexheg.errors import InputError
from flexheg.registry import Registry
from flexheg.wire import Envelope, SigningKey

from .factories import NOW, data_center, device

AGREEMENT = "sha256:" + 64 * "a"
DAY = 86400


@pytest.fixture
def state_key() -> SigningKey:
    return SigningKey.generate()


def renew(registry: Registry, device_id: str, key: SigningKey, now: int = NOW) -> dict[str, object]:
    return registry.renew_license(device_id, licensing_state="NL", signing_key=key,
                                  agreement_digest=AGREEMENT, actor="nl", now=now)


def test_good_standing_gets_verifiable_license(populated: Registry, state_key: SigningKey) -> None:
    decision = renew(populated, "gpu-1", state_key)
    assert decision["granted"] is True
    assert decision["reasons"] == []
    envelope = Envelope.from_dict(decision["license"], what="license")
    license_ = verify_license(envelope, device_id="gpu-1", agreement_digest=AGREEMENT,
                              licensing_states={"NL": [state_key.public]}, now=NOW + 1)
    assert license_.serial == 1
    assert license_.not_after == NOW + 7 * DAY


def test_serial_increases_per_state(populated: Registry, state_key: SigningKey) -> None:
    serials = [renew(populated, "gpu-1", state_key, NOW + i)["serial"] for i in range(3)]
    assert serials == [1, 2, 3]
    other = populated.renew_license("gpu-1", licensing_state="FR", signing_key=state_key,
                                    agreement_digest=AGREEMENT, actor="fr", now=NOW)
    assert other["serial"] == 1


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("missing", "device-missing"),
        ("overdue", "attestation-overdue"),
        ("away", "away-from-registered-location"),
        ("custody", "custody-flagged"),
        ("discarded", "discarded"),
    ],
)
def test_refusals_are_recorded(populated: Registry, state_key: SigningKey, setup: str,
                               reason: str) -> None:
    now = NOW + 10
    if setup == "missing":
        populated.record_inspection("gpu-1", seen=False, inspector="i", now=now)
    elif setup == "overdue":
        now = NOW + 2 * DAY
        populated.record_attestation("gpu-2", tick=now, actor="v", now=now)
    elif setup == "away":
        populated.record_location("gpu-1", latitude=1.35, longitude=103.8, source="inspector",
                                  actor="i", now=now)
    elif setup == "custody":
        populated.record_inspection("gpu-1", seen=True, seals_intact=False, inspector="i", now=now)
    else:
        populated.update("gpu-1", {"status": "discarded"}, actor="ib", reason="broken", now=now)
    decision = renew(populated, "gpu-1", state_key, now)
    assert decision["granted"] is False
    assert decision["reasons"] == [reason]
    assert decision["license"] is None
    assert populated.license_decisions("gpu-1")[-1]["reasons"] == [reason]
    assert renew(populated, "gpu-2", state_key, now)["granted"] is True


def test_refusal_lists_every_reason(populated: Registry, state_key: SigningKey) -> None:
    now = NOW + 3 * DAY
    populated.record_location("gpu-3", latitude=1.35, longitude=103.8, source="i", actor="i", now=now)
    populated.record_inspection("gpu-3", seen=False, seals_intact=False, inspector="i", now=now)
    decision = renew(populated, "gpu-3", state_key, now)
    assert decision["reasons"] == ["device-missing", "attestation-overdue",
                                   "away-from-registered-location", "custody-flagged"]


def test_renewal_input_errors(populated: Registry, state_key: SigningKey) -> None:
    with pytest.raises(InputError, match="digest"):
        populated.renew_license("gpu-1", licensing_state="NL", signing_key=state_key,
                                agreement_digest="abc", actor="nl", now=NOW)
    with pytest.raises(InputError, match="not a flexHEG device"):
        renew(populated, "dc-1", state_key)
    with pytest.raises(InputError, match="validity"):
        populated.renew_license("gpu-1", licensing_state="NL", signing_key=state_key,
                                agreement_digest=AGREEMENT, actor="nl", now=NOW, validity=0)


def test_missing_report(populated: Registry) -> None:
    assert populated.missing_report(now=NOW + 10) == []
    later = NOW + 2 * DAY
    populated.record_attestation("gpu-1", tick=later, actor="v", now=later)
    populated.record_location("gpu-1", latitude=10.0, longitude=10.0, source="landmark",
                              actor="l", now=later)
    populated.record_inspection("gpu-3", seen=False, inspector="i", now=later)
    report = {row["device_id"]: row["reasons"] for row in populated.missing_report(now=later)}
    assert report == {
        "gpu-1": ["location-contradicts-registration"],
        "gpu-2": ["attestation-overdue"],
        "gpu-3": ["found-missing", "attestation-overdue"],
    }
    assert len(populated.missing_report(now=later, limit=1)) == 1


def test_never_attested_counts_from_registration(registry: Registry) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    registry.register(device("gpu-9"), actor="ib", now=NOW)
    assert registry.missing_report(now=NOW + DAY) == []
    assert registry.missing_report(now=NOW + DAY + 1)[0]["reasons"] == ["attestation-overdue"]


def test_attestation_must_not_go_back(populated: Registry) -> None:
    with pytest.raises(InputError, match="older"):
        populated.record_attestation("gpu-1", tick=NOW - 1, actor="v", now=NOW)
    with pytest.raises(InputError, match="after the current time"):
        populated.record_attestation("gpu-1", tick=NOW + 5, actor="v", now=NOW)
    assert populated.get("gpu-1")["attestation_count"] == 1


def test_operating_license_type() -> None:
    assert OperatingLicense.TYPE == "flexheg.dev/operating-license/v1"
