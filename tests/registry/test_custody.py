"""Chain of custody and verifiable discard."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexheg.errors import InputError, Reason, Rejected
from flexheg.registry import CustodyHandover, CustodyStage, DestructionRecord, Registry
from flexheg.wire import Envelope, SigningKey, parse_statement

from .factories import NOW, data_center, device

STAGES = [CustodyStage.FAB, CustodyStage.TESTING, CustodyStage.CUSTOMER, CustodyStage.DATA_CENTER]
PARTIES = {"fab-tsmc": "fab", "lab-1": "testing-facility", "acme": "customer",
           "dc-op": "data-center", "shredder": "destruction-facility"}
HOLDER = {CustodyStage.FAB: "fab-tsmc", CustodyStage.TESTING: "lab-1",
          CustodyStage.CUSTOMER: "acme", CustodyStage.DATA_CENTER: "dc-op"}


@pytest.fixture
def keys(registry: Registry) -> dict[str, SigningKey]:
    generated = {name: SigningKey.generate() for name in PARTIES}
    for name, role in PARTIES.items():
        registry.register_party(name, role=role, public_key=generated[name].public, actor="ib", now=NOW)
    registry.register(data_center(), actor="ib", now=NOW)
    registry.register(device("gpu-1"), actor="ib", now=NOW)
    registry.register(device("gpu-2"), actor="ib", now=NOW)
    return generated


def handover(step: int, *, sender: str | None = None, seal_intact: bool = True,
             devices: tuple[str, ...] = ("gpu-1", "gpu-2")) -> CustodyHandover:
    return CustodyHandover(
        device_ids=devices, package_seal=f"seal-{step}", sender=sender or HOLDER[STAGES[step]],
        receiver=HOLDER[STAGES[step + 1]], from_stage=STAGES[step], to_stage=STAGES[step + 1],
        seal_intact=seal_intact, tick=NOW + step)


def signed(statement: CustodyHandover, keys: dict[str, SigningKey]) -> Envelope:
    return Envelope.sign(statement, keys[statement.sender], keys[statement.receiver])


def test_complete_chain_accepted(registry: Registry, keys: dict[str, SigningKey]) -> None:
    for step in range(3):
        result = registry.record_handover(signed(handover(step), keys), actor="ib", now=NOW + step)
        assert result["problems"] == {"gpu-1": [], "gpu-2": []}
    chain = registry.custody_chain("gpu-1")
    assert [record["stage"] for record in chain] == ["testing", "customer", "data-center"]
    assert registry.get("gpu-1")["custody_problem"] is None


def test_gap_flags_device(registry: Registry, keys: dict[str, SigningKey]) -> None:
    registry.record_handover(signed(handover(0), keys), actor="ib", now=NOW)
    result = registry.record_handover(signed(handover(2), keys), actor="ib", now=NOW + 2)
    assert any("gap" in problem for problem in result["problems"]["gpu-1"])
    assert "gap" in (registry.get("gpu-1")["custody_problem"] or "")
    assert registry.history("gpu-1")[-1]["action"] == "custody-flag"


def test_missing_signature_flags_device(registry: Registry, keys: dict[str, SigningKey]) -> None:
    statement = handover(0)
    only_sender = Envelope.sign(statement, keys["fab-tsmc"])
    result = registry.record_handover(only_sender, actor="ib", now=NOW)
    assert result["problems"]["gpu-1"] == ["signature of lab-1 is missing or invalid"]
    forged = Envelope.sign(statement, keys["fab-tsmc"], SigningKey.generate())
    registry.record_handover(forged, actor="ib", now=NOW)
    assert registry.get("gpu-2")["custody_problem"] is not None


def test_wrong_role_and_broken_seal(registry: Registry, keys: dict[str, SigningKey]) -> None:
    statement = handover(0, sender="acme", seal_intact=False, devices=("gpu-1",))
    envelope = Envelope.sign(statement, keys["acme"], keys["lab-1"])
    problems = registry.record_handover(envelope, actor="ib", now=NOW)["problems"]["gpu-1"]
    assert "party acme has role customer, which cannot act at stage fab" in problems
    assert "package seal seal-0 arrived broken" in problems
    assert registry.get("gpu-2")["custody_problem"] is None


def test_first_handover_must_start_at_fab(registry: Registry, keys: dict[str, SigningKey]) -> None:
    result = registry.record_handover(signed(handover(1), keys), actor="ib", now=NOW)
    assert "chain starts at testing instead of fab" in result["problems"]["gpu-1"]


def test_clear_custody_flag_needs_reason(registry: Registry, keys: dict[str, SigningKey]) -> None:
    registry.record_handover(signed(handover(1), keys), actor="ib", now=NOW)
    with pytest.raises(InputError, match="reason"):
        registry.clear_custody_flag("gpu-1", reason=" ", actor="ib", now=NOW)
    registry.clear_custody_flag("gpu-1", reason="re-inspected at lab-1", actor="ib", now=NOW + 1)
    assert registry.get("gpu-1")["custody_problem"] is None
    assert registry.history("gpu-1")[-1]["reason"] == "re-inspected at lab-1"


def test_handover_of_unknown_device(registry: Registry, keys: dict[str, SigningKey]) -> None:
    with pytest.raises(InputError, match="gpu-404"):
        registry.record_handover(signed(handover(0, devices=("gpu-404",)), keys), actor="ib", now=NOW)


def _destruction(keyid: str, facility: str = "shredder") -> DestructionRecord:
    return DestructionRecord(device_id="gpu-1", identity_keyid=keyid, facility=facility,
                             method="shredding", reason="failed burn-in", tick=NOW)


def test_destruction_discards_device(registry: Registry, keys: dict[str, SigningKey]) -> None:
    keyid = registry.get("gpu-1")["identity_key"]["keyid"]
    result = registry.record_destruction(Envelope.sign(_destruction(keyid), keys["shredder"]),
                                         actor="ib", now=NOW)
    assert result["status"] == "discarded"
    assert registry.custody_chain("gpu-1")[-1]["kind"] == "destruction"


@pytest.mark.parametrize(
    ("case", "reason"),
    [("untrusted", Reason.UNKNOWN_SIGNER), ("forged", Reason.BAD_SIGNATURE),
     ("other-key", Reason.MALFORMED)],
)
def test_destruction_rejections(registry: Registry, keys: dict[str, SigningKey], case: str,
                                reason: Reason) -> None:
    keyid = registry.get("gpu-1")["identity_key"]["keyid"]
    if case == "untrusted":
        envelope = Envelope.sign(_destruction(keyid, facility="lab-1"), keys["lab-1"])
    elif case == "forged":
        envelope = Envelope.sign(_destruction(keyid), SigningKey.generate())
    else:
        envelope = Envelope.sign(_destruction("other"), keys["shredder"])
    with pytest.raises(Rejected) as caught:
        registry.record_destruction(envelope, actor="ib", now=NOW)
    assert caught.value.reason == reason
    assert registry.get("gpu-1")["status"] == "active"


_names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}", fullmatch=True)


@given(
    devices=st.lists(_names, min_size=1, max_size=4, unique=True),
    step=st.integers(0, 2),
    intact=st.booleans(),
    tick=st.integers(0, 2**40),
)
def test_handover_statement_round_trip(devices: list[str], step: int, intact: bool, tick: int) -> None:
    statement = CustodyHandover(
        device_ids=tuple(sorted(devices)), package_seal="seal", sender="a", receiver="b",
        from_stage=STAGES[step], to_stage=STAGES[step + 1], seal_intact=intact, tick=tick)
    assert parse_statement(statement.encode(), CustodyHandover, what="t") == statement


def test_handover_statement_rejects_unsorted() -> None:
    statement = CustodyHandover(device_ids=("b", "a"), package_seal="s", sender="x", receiver="y",
                                from_stage=CustodyStage.FAB, to_stage=CustodyStage.TESTING,
                                seal_intact=True, tick=1)
    with pytest.raises(InputError, match="sorted"):
        parse_statement(statement.encode(), CustodyHandover, what="t")


@given(st.text(max_size=8), st.integers(0, 2**40))
def test_destruction_statement_round_trip(method: str, tick: int) -> None:
    record = DestructionRecord(device_id="gpu-1", identity_keyid="k", facility="f",
                               method=method or "m", reason="r", tick=tick)
    assert parse_statement(record.encode(), DestructionRecord, what="t") == record
