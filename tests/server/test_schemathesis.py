"""Property-based tests of the OpenAPI description: no server error, no schema violation.

Schemathesis generates requests for every operation from the app's OpenAPI document and sends
them in process with an international-body token, once over SQLite and once over PostgreSQL.
Examples per operation are bounded, so each run takes well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flexheg.registry import NewEntity, Registry
from flexheg.server import ServerConfig, create_app
from flexheg.wire import SigningKey

NOW = 1_800_000_000
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def api_schema(database_url: str) -> Iterator[schemathesis.BaseSchema]:
    config = ServerConfig(database_url=database_url, license_keys={"NL": SigningKey.generate()},
                          agreement_digest="sha256:" + 64 * "a", clock=lambda: NOW)
    registry = Registry.open(config.database_url, config.registry)
    registry.register(NewEntity.build(id="dc-1", kind="data-center", owner="acme", latitude=1.0,
                                      longitude=2.0, region="SG"), actor="t", now=NOW)
    registry.register(NewEntity.build(id="gpu-1", kind="device", owner="acme", latitude=1.0,
                                      longitude=2.0, region="SG", site_id="dc-1",
                                      identity_key=SigningKey.generate().public), actor="t", now=NOW)
    token = registry.issue_token("ib", role="international-body", actor="t", now=NOW)
    app = create_app(config, registry=registry)
    app.state.test_token = token
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    registry.close()


def test_api_conforms_to_openapi(api_schema: schemathesis.BaseSchema) -> None:
    token = api_schema.app.state.test_token
    headers = {"Authorization": f"Bearer {token}"}
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 25

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
