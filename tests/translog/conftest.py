from __future__ import annotations

from pathlib import Path

import pytest

from flexheg.translog.log import TransparencyLog
from flexheg.translog.storage import SQLiteLogStorage, SQLiteWitnessStorage
from flexheg.translog.witness import Witness
from flexheg.wire.checkpoint import NoteSigner

LOG_SIGNER = NoteSigner.generate("log.test/approvals")
WITNESS_SIGNERS = [NoteSigner.generate(f"witness.test/w{i}") for i in range(3)]


@pytest.fixture
def log(tmp_path: Path) -> TransparencyLog:
    return TransparencyLog(SQLiteLogStorage(tmp_path / "log.sqlite"), LOG_SIGNER)


@pytest.fixture
def witnesses(tmp_path: Path) -> list[Witness]:
    logs = {LOG_SIGNER.name: LOG_SIGNER.verifier()}
    return [
        Witness(SQLiteWitnessStorage(tmp_path / f"witness{i}.sqlite"), signer, logs)
        for i, signer in enumerate(WITNESS_SIGNERS)
    ]
