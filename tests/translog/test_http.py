"""The log's HTTP API, served by a real uvicorn process on loopback."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from typer.testing import CliRunner

from flexheg.cli.log import app as log_app
from flexheg.translog.http import HttpLogClient, format_add_checkpoint
from flexheg.wire.checkpoint import Checkpoint, NoteVerifier, verify_log_bundle

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Server:
    def __init__(self, root: Path) -> None:
        runner = CliRunner()
        self.log_dir, self.witness_dir = root / "log", root / "witness"
        result = runner.invoke(log_app, ["init", str(self.log_dir), "--name", "log.test/http"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(log_app, ["witness", "init", str(self.witness_dir), "--name",
                                         "witness.test/http", "--log-vkey",
                                         str(self.log_dir / "log.vkey")])
        assert result.exit_code == 0, result.output
        self.base = f"http://127.0.0.1:{_free_port()}"
        env = {**os.environ, "FLEXHEG_TEST_LOG_DIR": str(self.log_dir),
               "FLEXHEG_TEST_WITNESS_DIR": str(self.witness_dir),
               "FLEXHEG_TEST_BASE_URL": self.base}
        port = self.base.rsplit(":", 1)[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "http_app:create_app", "--app-dir",
             str(HERE), "--host", "127.0.0.1", "--port", port, "--log-level", "warning"],
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.base}/openapi.json", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the uvicorn test server did not start") from None
                time.sleep(0.1)

    def key(self, name: str) -> NoteVerifier:
        return NoteVerifier.from_vkey((Path(name)).read_text())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("http"))
    yield running
    running.stop()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_append_checkpoint_bundle_over_http(server: Server) -> None:
    client = httpx.Client(base_url=f"{server.base}/log", timeout=10.0)
    entries = [f"approval {i}".encode() for i in range(6)]
    response = client.post("/entries", json={"entries": [b64(e) for e in entries]})
    assert response.status_code == 200
    assert [row["index"] for row in response.json()["entries"]] == list(range(6))

    response = client.post("/checkpoint")
    assert response.status_code == 200
    checkpoint = Checkpoint.parse(response.content)
    assert len(checkpoint.signed_note().signatures) == 2

    response = client.post("/bundle", json={"entries": [b64(entries[4])]})
    assert response.status_code == 200
    log_key = server.key(str(server.log_dir / "log.vkey"))
    witness_key = server.key(str(server.witness_dir / "witness.vkey"))
    newest = verify_log_bundle(response.content, entries=[entries[4]], log_key=log_key,
                               witnesses=[witness_key], quorum=1, newest_seen=None)
    assert newest.size == checkpoint.size

    client.post("/entries", json={"entries": [b64(b"later")]})
    client.post("/checkpoint")
    response = client.post("/bundle", json={"entries": [b64(b"later")],
                                            "newest_seen_size": newest.size})
    later = verify_log_bundle(response.content, entries=[b"later"], log_key=log_key,
                              witnesses=[witness_key], quorum=1, newest_seen=newest)
    assert later.size > newest.size

    remote = HttpLogClient(f"{server.base}/log", client)
    assert remote.checkpoint().size == later.size
    assert len(remote.consistency_proof(newest.size, later.size)) >= 1


def test_witness_conflict_and_errors(server: Server) -> None:
    client = httpx.Client(base_url=f"{server.base}/log", timeout=10.0)
    client.post("/entries", json={"entries": [b64(b"conflict test")]})
    note = client.post("/checkpoint").content
    response = client.post("/add-checkpoint", content=format_add_checkpoint(0, [], note))
    assert response.status_code == 409
    assert int(response.text) == Checkpoint.parse(note).size
    assert client.post("/add-checkpoint", content=b"garbage").status_code == 400
    assert client.get("/entries/999999").status_code == 404
    assert client.post("/entries", json={"entries": ["not base64!"]}).status_code == 400
    assert client.get("/proof/inclusion", params={"index": 5, "size": 2}).status_code == 400


@pytest.fixture
def api_schema(server: Server) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server.base}/openapi.json")


def test_api_conforms_to_openapi(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate(
                checks=[not_a_server_error, response_schema_conformance, status_code_conformance]
            )

        check()
