"""The server answers 413 to oversized bodies before reading them."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from flexheg.server._app import BodyLimit


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"size": len(body)})


def _client(limit: int) -> TestClient:
    app: Any = Starlette(routes=[Route("/", _echo, methods=["POST"])])
    return TestClient(BodyLimit(app, limit=limit))


def test_body_within_limit_is_read() -> None:
    response = _client(100).post("/", content=b"x" * 100)
    assert response.status_code == 200
    assert response.json() == {"size": 100}


def test_declared_oversized_body_rejected() -> None:
    response = _client(100).post("/", content=b"x" * 101)
    assert response.status_code == 413


@pytest.mark.parametrize("chunks", [3, 10])
def test_streamed_oversized_body_rejected(chunks: int) -> None:
    def stream() -> Any:
        for _ in range(chunks):
            yield b"x" * 60

    response = _client(100).post("/", content=stream())
    assert response.status_code == 413
