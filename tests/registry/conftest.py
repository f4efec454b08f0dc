"""Fixtures that run the registry tests against SQLite and, when configured, PostgreSQL.

PostgreSQL cases need ``FLEXHEG_TEST_POSTGRES_URL`` (``.ci/services/postgres.sh`` starts a server
and sets it). Each test gets a fresh database, created and dropped around it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from flexheg.registry import Registry, RegistryConfig

from .factories import NOW, data_center, device

POSTGRES_ENV = "FLEXHEG_TEST_POSTGRES_URL"


def _admin_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Create a fresh PostgreSQL database for one test and drop it afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set; source .ci/services/postgres.sh to start PostgreSQL")
    name = "flexheg_" + uuid.uuid4().hex[:16]
    with psycopg.connect(_admin_url(base), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    prefix = base.rsplit("/", 1)[0]
    try:
        yield f"{prefix}/{name}"
    finally:
        with psycopg.connect(_admin_url(base), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def config() -> RegistryConfig:
    return RegistryConfig(attestation_deadline=86400, location_tolerance_km=25.0,
                          power_off_threshold=3600, license_validity=7 * 86400)


@pytest.fixture
def registry(registry_url: str, config: RegistryConfig) -> Iterator[Registry]:
    opened = Registry.open(registry_url, config)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def populated(registry: Registry) -> Registry:
    """A registry with one data center and three devices there, all attested at NOW."""
    registry.register(data_center(), actor="ib", now=NOW)
    for index in range(1, 4):
        registry.register(device(f"gpu-{index}"), actor="ib", now=NOW)
        registry.record_attestation(f"gpu-{index}", tick=NOW, actor="verifier", now=NOW)
    return registry
