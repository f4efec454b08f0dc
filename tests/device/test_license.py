"""Operating licenses: parsing and every rejection of verify_license."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexheg.device.license import OperatingLicense, verify_license
from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import Envelope, PublicKey, SigningKey, parse_statement

AGREEMENT = "sha256:" + 64 * "a"
NOW = 1_800_000_000
NL = SigningKey.generate()
FR = SigningKey.generate()
STATES: Mapping[str, Sequence[PublicKey]] = {"NL": [NL.public], "FR": [FR.public]}


def _license(**overrides: object) -> OperatingLicense:
    fields: dict[str, object] = {"device_id": "gpu-1", "agreement": AGREEMENT,
                                 "licensing_state": "NL", "serial": 3, "not_before": NOW - 10,
                                 "not_after": NOW + 100}
    fields.update(overrides)
    return OperatingLicense(**fields)  # type: ignore[arg-type]


def _verify(envelope: Envelope, *, now: int = NOW, device_id: str = "gpu-1",
            states: Mapping[str, Sequence[PublicKey]] = STATES) -> OperatingLicense:
    return verify_license(envelope, device_id=device_id, agreement_digest=AGREEMENT,
                          licensing_states=states, now=now)


def test_valid_license_accepted() -> None:
    assert _verify(Envelope.sign(_license(), NL)) == _license()


def test_any_configured_state_accepted() -> None:
    assert _verify(Envelope.sign(_license(licensing_state="FR"), FR)).licensing_state == "FR"


def test_validity_bounds_inclusive() -> None:
    envelope = Envelope.sign(_license(), NL)
    assert _verify(envelope, now=NOW - 10).serial == 3
    assert _verify(envelope, now=NOW + 100).serial == 3


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong-device", Reason.WRONG_DEVICE),
        ("wrong-agreement", Reason.WRONG_AGREEMENT),
        ("unknown-state", Reason.UNKNOWN_SIGNER),
        ("empty-state", Reason.UNKNOWN_SIGNER),
        ("other-state-key", Reason.BAD_SIGNATURE),
        ("unsigned", Reason.BAD_SIGNATURE),
        ("expired", Reason.EXPIRED),
        ("not-yet-valid", Reason.EXPIRED),
        ("malformed", Reason.MALFORMED),
        ("other-type", Reason.MALFORMED),
    ],
)
def test_rejections(case: str, reason: Reason) -> None:
    envelope = Envelope.sign(_license(), NL)
    states = STATES
    now = NOW
    device_id = "gpu-1"
    if case == "wrong-device":
        device_id = "gpu-2"
    elif case == "wrong-agreement":
        envelope = Envelope.sign(_license(agreement="sha256:" + 64 * "b"), NL)
    elif case == "unknown-state":
        envelope = Envelope.sign(_license(licensing_state="XX"), NL)
    elif case == "empty-state":
        states = {"NL": []}
    elif case == "other-state-key":
        envelope = Envelope.sign(_license(), FR)
    elif case == "unsigned":
        envelope = Envelope(envelope.payload, envelope.payload_type, ())
    elif case == "expired":
        now = NOW + 101
    elif case == "not-yet-valid":
        now = NOW - 11
    elif case == "malformed":
        envelope = Envelope(b'{"type":"flexheg.dev/operating-license/v1"}', envelope.payload_type,
                            envelope.signatures)
    else:
        envelope = Envelope(b"[]", "text/plain", envelope.signatures)
    with pytest.raises(Rejected) as caught:
        _verify(envelope, now=now, device_id=device_id, states=states)
    assert caught.value.reason == reason


def test_forged_payload_rejected() -> None:
    envelope = Envelope.sign(_license(), NL)
    forged = Envelope(_license(not_after=NOW + 10**6).encode(), envelope.payload_type,
                      envelope.signatures)
    with pytest.raises(Rejected) as caught:
        _verify(forged)
    assert caught.value.reason == Reason.BAD_SIGNATURE


def test_not_after_before_not_before_is_invalid() -> None:
    statement = _license(not_before=NOW, not_after=NOW - 1)
    with pytest.raises(InputError, match="before not_before"):
        parse_statement(statement.encode(), OperatingLicense, what="license")


@given(
    device_id=st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True),
    serial=st.integers(0, 2**53 - 1),
    not_before=st.integers(0, 2**40),
    span=st.integers(0, 2**40),
)
def test_license_round_trip(device_id: str, serial: int, not_before: int, span: int) -> None:
    statement = _license(device_id=device_id, serial=serial, not_before=not_before,
                         not_after=not_before + span)
    assert parse_statement(statement.encode(), OperatingLicense, what="license") == statement
