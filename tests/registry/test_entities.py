"""Registration, updates with history, owner scoping and the migrations."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from flexheg.device import DeviceCertificate
from flexheg.errors import InputError
from flexheg.registry import (
    ConflictError,
    EntityKind,
    NewEntity,
    NotFoundError,
    Registry,
    public_key_from_hex,
)
from flexheg.registry._models import Base
from flexheg.wire import Envelope, SigningKey

from .factories import NOW, data_center, device


def test_register_returns_entity(registry: Registry) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    created = registry.register(device("gpu-1"), actor="ib", now=NOW)
    assert created["kind"] == "device"
    assert created["status"] == "active"
    assert created["site_id"] == "dc-1"
    assert registry.get("gpu-1") == created
    assert registry.count(kind=EntityKind.DEVICE) == 1


def test_register_duplicate_id_conflicts(registry: Registry) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    with pytest.raises(ConflictError, match="already registered"):
        registry.register(data_center(), actor="ib", now=NOW + 1)


def test_register_duplicate_identity_key_conflicts(registry: Registry) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    key = SigningKey.generate()
    registry.register(device("gpu-1", key=key), actor="ib", now=NOW)
    with pytest.raises(ConflictError):
        registry.register(device("gpu-2", key=key), actor="ib", now=NOW)
    assert registry.count() == 2


def test_register_unknown_site_rejected(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="dc-9"):
        registry.register(device("gpu-1", site="dc-9"), actor="ib", now=NOW)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "toaster"}, "entity kind"),
        ({"latitude": 91.0}, "latitude"),
        ({"longitude": float("nan")}, "longitude"),
        ({"id": "bad id"}, "entity id"),
        ({"owner": " "}, "owner"),
        ({"risk_weight": 0}, "risk weight"),
        ({"kind": "device"}, "identity key"),
    ],
)
def test_new_entity_validation(overrides: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"id": "e-1", "kind": "fab", "owner": "acme", "latitude": 1.0,
                                 "longitude": 2.0, "region": "TW"}
    fields.update(overrides)
    with pytest.raises(InputError, match=message):
        NewEntity.build(**fields)  # type: ignore[arg-type]


def test_update_records_old_values(registry: Registry) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    registry.update("dc-1", {"owner": "globex", "risk_weight": 5}, actor="ib", reason="sold",
                    now=NOW + 10)
    history = registry.history("dc-1")
    assert [change["action"] for change in history] == ["register", "update"]
    assert history[1]["old"] == {"owner": "acme", "risk_weight": 1}
    assert history[1]["new"] == {"owner": "globex", "risk_weight": 5}
    assert history[1]["reason"] == "sold"
    assert registry.get("dc-1")["version"] == 2


def test_update_without_change_writes_nothing(registry: Registry) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    registry.update("dc-1", {"owner": "acme"}, actor="ib", reason="", now=NOW + 1)
    assert len(registry.history("dc-1")) == 1


@pytest.mark.parametrize(
    "values",
    [{"identity_key": "x"}, {"latitude": 10.0}, {"status": "stolen"}, {"risk_weight": 101}],
)
def test_update_rejects_invalid(registry: Registry, values: dict[str, object]) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    with pytest.raises(InputError):
        registry.update("dc-1", values, actor="ib", reason="", now=NOW)
    assert len(registry.history("dc-1")) == 1


def test_owner_sees_only_own_entities(registry: Registry) -> None:
    registry.register(data_center("dc-1", owner="acme"), actor="ib", now=NOW)
    registry.register(data_center("dc-2", owner="globex"), actor="ib", now=NOW)
    assert [e["id"] for e in registry.list_entities(owner="acme")] == ["dc-1"]
    with pytest.raises(NotFoundError):
        registry.get("dc-2", owner="acme")
    with pytest.raises(NotFoundError):
        registry.history("dc-2", owner="acme")


def test_certificate_needs_manufacturer_signature(registry: Registry) -> None:
    maker = SigningKey.generate()
    registry.register_party("maker", role="manufacturer", public_key=maker.public, actor="ib", now=NOW)
    registry.register(data_center(), actor="ib", now=NOW)
    identity = SigningKey.generate()
    good = Envelope.sign(_certificate_statement(identity), maker)
    forged = Envelope.sign(_certificate_statement(identity), SigningKey.generate())
    base = {"kind": "device", "owner": "acme", "latitude": 52.37, "longitude": 4.9,
            "region": "NL", "identity_key": identity.public, "manufacturer": "maker"}
    with pytest.raises(InputError, match="no valid signature"):
        registry.register(NewEntity.build(id="gpu-1", certificate=forged, **base),  # type: ignore[arg-type]
                          actor="ib", now=NOW)
    other_device = Envelope.sign(_certificate_statement(identity, "gpu-9"), maker)
    with pytest.raises(InputError, match="gpu-9"):
        registry.register(NewEntity.build(id="gpu-1", certificate=other_device, **base),  # type: ignore[arg-type]
                          actor="ib", now=NOW)
    created = registry.register(NewEntity.build(id="gpu-1", certificate=good, **base),  # type: ignore[arg-type]
                                actor="ib", now=NOW)
    assert created["certificate"] == good.to_dict()


def _certificate_statement(identity: SigningKey, device_id: str = "gpu-1") -> DeviceCertificate:
    return DeviceCertificate(device_id=device_id, identity_key=identity.public, model="h100",
                             agreement="sha256:" + 64 * "a", issued_at=NOW)


def test_public_key_from_hex_matches_keyid() -> None:
    key = SigningKey.generate()
    public_hex = key.public.key.keyval["public"]
    assert public_key_from_hex(public_hex, what="key").keyid == key.keyid
    with pytest.raises(InputError, match="64 lowercase hex"):
        public_key_from_hex("zz", what="key")


def test_migrations_match_models(registry: Registry) -> None:
    with registry.db.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert compare_metadata(context, Base.metadata) == []
