"""An in-process server over a temporary SQLite registry, with a token for each role, and a
fresh PostgreSQL database per test where ``FLEXHEG_TEST_POSTGRES_URL`` is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flexheg.registry import Registry, RegistryConfig
from flexheg.server import ServerConfig, create_app
from flexheg.wire import SigningKey

NOW = 1_800_000_000
AGREEMENT = "sha256:" + 64 * "a"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Create a fresh PostgreSQL database for one test and drop it afterwards."""
    base = os.environ.get("FLEXHEG_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("FLEXHEG_TEST_POSTGRES_URL is not set; source .ci/services/postgres.sh")
    name = "flexheg_" + uuid.uuid4().hex[:16]
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    app: FastAPI
    client: TestClient
    registry: Registry
    tokens: dict[str, str]
    state_key: SigningKey

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    config = ServerConfig(
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        registry=RegistryConfig(attestation_deadline=86400, location_tolerance_km=25.0),
        license_keys={"NL": (state_key := SigningKey.generate())},
        agreement_digest=AGREEMENT,
        clock=lambda: NOW,
    )
    registry = Registry.open(config.database_url, config.registry)
    tokens = {
        "ib": registry.issue_token("ib", role="international-body", actor="test", now=NOW),
        "inspector": registry.issue_token("insp-1", role="inspector", actor="test", now=NOW),
        "acme": registry.issue_token("acme", role="owner", actor="test", now=NOW),
        "globex": registry.issue_token("globex", role="owner", actor="test", now=NOW),
        "NL": registry.issue_token("NL", role="licensing-state", actor="test", now=NOW),
    }
    app = create_app(config, registry=registry)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Server(app, client, registry, tokens, state_key)
    registry.close()
