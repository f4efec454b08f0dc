"""App factory that the HTTP tests start under uvicorn in a separate process."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from fastapi import FastAPI

from flexheg.cli.log import open_log, open_witness
from flexheg.translog.http import HttpWitness, create_router


def create_app() -> FastAPI:
    log = open_log(Path(os.environ["FLEXHEG_TEST_LOG_DIR"]))
    witness = open_witness(Path(os.environ["FLEXHEG_TEST_WITNESS_DIR"]))
    base = os.environ["FLEXHEG_TEST_BASE_URL"]
    client = httpx.Client(timeout=10.0)
    cosigner = HttpWitness(witness.name, f"{base}/log/add-checkpoint", client)
    app = FastAPI(title="flexheg log test server")
    app.include_router(create_router(log, witness=witness, cosigners=[cosigner]), prefix="/log")
    return app
