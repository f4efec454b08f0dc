"""Builders of registration requests shared by the registry tests."""

from __future__ import annotations

from flexheg.registry import NewEntity
from flexheg.wire import SigningKey

NOW = 1_800_000_000


def data_center(entity_id: str = "dc-1", owner: str = "acme") -> NewEntity:
    return NewEntity.build(id=entity_id, kind="data-center", owner=owner, latitude=52.37,
                           longitude=4.90, region="NL")


def device(entity_id: str = "gpu-1", owner: str = "acme", site: str | None = "dc-1",
           key: SigningKey | None = None) -> NewEntity:
    return NewEntity.build(
        id=entity_id, kind="device", owner=owner, latitude=52.37, longitude=4.90, region="NL",
        site_id=site, identity_key=(key or SigningKey.generate()).public,
    )
