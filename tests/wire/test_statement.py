"""Typed statements: round trips of every device statement, and strict rejection."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _parties import CAPPED, Parties, ruleset
from flexheg.device import Agreement, DeviceCertificate, Evidence, LifetimeExtension
from flexheg.errors import InputError
from flexheg.policy import Action, Approval
from flexheg.rules import RulesetUpdate
from flexheg.wire import (
    MAX_SAFE_INTEGER,
    SigningKey,
    Statement,
    encode,
    parse_any_statement,
    parse_statement,
    statement_types,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PARTIES = Parties()
IDENTITY = SigningKey.generate()

digests = st.binary(min_size=1, max_size=8).map(lambda b: "sha256:" + b.hex().ljust(64, "0")[:64])
ticks = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)
names = st.text(min_size=1, max_size=12)
counts = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)

approvals = st.builds(
    Approval,
    agreement=digests,
    action=st.sampled_from(Action),
    subject=digests,
    approver=names,
    serial=counts,
    time=ticks,
    overrides=st.lists(names, max_size=2).map(tuple),
)
extensions = st.builds(
    LifetimeExtension,
    agreement=digests,
    update=digests,
    version=st.integers(min_value=1, max_value=MAX_SAFE_INTEGER),
    serial=st.integers(min_value=1, max_value=MAX_SAFE_INTEGER),
    not_after=ticks,
)
certificates = st.builds(
    DeviceCertificate,
    device_id=names,
    identity_key=st.just(IDENTITY.public),
    model=names,
    agreement=digests,
    issued_at=ticks,
)
claims = st.none() | st.dictionaries(names, st.integers(min_value=0, max_value=10**6) | names, max_size=3)
evidence = st.builds(
    Evidence,
    device_id=names,
    nonce=names,
    time=ticks,
    agreement=digests,
    mode=st.sampled_from(["active", "baseline", "lockdown"]),
    ruleset_version=counts,
    ruleset_digest=st.none() | digests,
    not_after=st.none() | ticks,
    extension_serial=counts,
    counters=st.dictionaries(st.sampled_from(["installs", "denied", "admitted"]), counts),
    power_log_head=digests,
    power_log_count=counts,
    checkpoint=st.none() | names,
    license=claims,
    location=claims,
)
updates = st.builds(
    RulesetUpdate,
    agreement=digests,
    version=st.integers(min_value=1, max_value=MAX_SAFE_INTEGER),
    issued_at=st.integers(min_value=0, max_value=2**40),
    lifetime=st.integers(min_value=1, max_value=2**40),
    ruleset=st.just(ruleset(CAPPED)),
    description=st.text(max_size=20),
)
statements = st.one_of(approvals, extensions, certificates, evidence, updates, st.just(PARTIES.agreement))


@SETTINGS
@given(statements)
def test_round_trip(statement: Statement) -> None:
    data = statement.encode()
    assert parse_statement(data, type(statement), what="statement") == statement
    assert parse_any_statement(data, what="statement") == statement
    assert parse_statement(data, type(statement), what="statement").encode() == data


@SETTINGS
@given(statements, names.filter(lambda n: n != "type"), st.none() | st.integers(0, 5) | names)
def test_unknown_field_rejected(statement: Statement, field: str, value: Any) -> None:
    document = statement.to_dict()
    if field in document:
        return
    document[field] = value
    with pytest.raises(InputError, match="unknown field"):
        parse_any_statement(encode(document), what="statement")


@SETTINGS
@given(statements, names)
def test_unknown_type_rejected(statement: Statement, type_name: str) -> None:
    if type_name in statement_types():
        return
    document = {**statement.to_dict(), "type": type_name}
    with pytest.raises(InputError, match="unknown statement type"):
        parse_any_statement(encode(document), what="statement")


@SETTINGS
@given(statements)
def test_other_expected_type_rejected(statement: Statement) -> None:
    other = Approval if not isinstance(statement, Approval) else LifetimeExtension
    with pytest.raises(InputError, match=f"expected a {other.TYPE} statement"):
        parse_statement(statement.encode(), other, what="statement")


@SETTINGS
@given(st.binary(max_size=100))
def test_random_bytes_raise_only_input_error(data: bytes) -> None:
    with contextlib.suppress(InputError):
        parse_any_statement(data, what="statement")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=8) | digests,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@SETTINGS
@given(statements, st.data())
def test_mutated_field_raises_only_input_error(statement: Statement, data: st.DataObject) -> None:
    """Replacing any field of a valid statement with any JSON value parses or raises InputError."""
    document = statement.to_dict()
    field = data.draw(st.sampled_from(sorted(document)))
    document[field] = data.draw(json_values)
    try:
        payload = encode(document)
    except InputError:
        return
    with contextlib.suppress(InputError):
        parse_any_statement(payload, what="statement")


@SETTINGS
@given(st.data())
def test_mutated_agreement_raises_only_input_error(data: st.DataObject) -> None:
    """Nested agreement fields (approvers, keys, policies) are read strictly too."""
    document = json.loads(PARTIES.agreement_payload)
    paths = [
        ("approvers", 0, "votes"),
        ("approvers", 0, "keys"),
        ("approvers", 0, "keys", 0, "key", "keyval", "public"),
        ("approvers", 0, "keys", 0, "key", "scheme"),
        ("approvers", 0, "keys", 0, "valid_until"),
        ("approvers", 1, "id"),
        ("policies", "install"),
        ("policies", "install", "kind"),
        ("manufacturers",),
        ("baseline",),
        ("baseline", "rules", 0, "when"),
        ("max_lifetime",),
    ]
    path = data.draw(st.sampled_from(paths))
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = data.draw(json_values)
    try:
        payload = encode(document)
    except InputError:
        return
    with contextlib.suppress(InputError):
        parse_statement(payload, Agreement, what="agreement")


def test_every_device_type_registered() -> None:
    for cls in (Approval, Agreement, RulesetUpdate, LifetimeExtension, DeviceCertificate, Evidence):
        assert cls.TYPE in statement_types()


def test_non_canonical_statement_rejected() -> None:
    data = json.dumps(json.loads(PARTIES.update(1)), indent=2).encode()
    with pytest.raises(InputError, match="canonical form"):
        parse_statement(data, RulesetUpdate, what="update.json")


def test_duplicate_key_statement_rejected() -> None:
    data = PARTIES.update(1)
    doubled = data.replace(b'"version":1', b'"version":1,"version":1')
    with pytest.raises(InputError, match="duplicate JSON key 'version'"):
        parse_statement(doubled, RulesetUpdate, what="update.json")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("agreement", "sha256:ABC", "is not a digest"),
        ("serial", -1, "below the minimum"),
        ("serial", True, "expected an integer"),
        ("action", "destroy", "unknown action"),
        ("approver", "", "must not be empty"),
        ("overrides", [1], "expected a string"),
    ],
)
def test_approval_field_checks(field: str, value: Any, message: str) -> None:
    document = Approval("sha256:" + "0" * 64, Action.INSTALL, "sha256:" + "1" * 64, "bloc-a", 1, 0).to_dict()
    document[field] = value
    with pytest.raises(InputError, match=message):
        parse_statement(encode(document), Approval, what="approval")
