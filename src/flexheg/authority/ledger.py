"""An approver's signer with a durable ledger, so that it can never equivocate by accident.

The ledger stores, per approver, every approval it signed: serial, agreement, action, subject,
the ruleset version the subject carries and the signed statement. :meth:`ApproverSigner.approve`

1. opens an exclusive write transaction (``BEGIN IMMEDIATE``), so two processes that share a
   ledger file are serialised;
2. rejects an extension of a version below the newest version this approver has approved in the
   same agreement (``rollback``);
3. assigns the next serial, ``max(serial) + 1`` per approver;
4. records the statement and commits with ``synchronous=FULL`` (fsync) *before* signing;
5. signs. Ed25519 signatures are deterministic, so re-signing a recorded statement after a crash
   yields the same envelope.

A serial is the primary key of its record, so no crash or restart between steps can ever lead to
two subjects under one serial. A crash after step 4 leaves a recorded serial that was never
returned; :meth:`ApproverSigner.resign` produces its envelope again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from flexheg.errors import InputError, Reason, Rejected
from flexheg.policy import Action, Approval
from flexheg.wire import Envelope, SigningKey, check_digest, parse_statement

logger = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS approvals ("
    " approver TEXT NOT NULL, serial INTEGER NOT NULL, agreement TEXT NOT NULL,"
    " action TEXT NOT NULL, subject TEXT NOT NULL, version INTEGER, keyid TEXT NOT NULL,"
    " statement BLOB NOT NULL, PRIMARY KEY (approver, serial))",
)


@dataclass(frozen=True)
class LedgerRecord:
    """One signed approval as the ledger stores it."""

    approver: str
    serial: int
    agreement: str
    action: Action
    subject: str
    version: int | None
    keyid: str
    statement: bytes


class ApproverSigner:
    """Signs approvals for one approver, recording each before it signs. See the module docs."""

    def __init__(self, db: sqlite3.Connection, path: Path, key: SigningKey, approver: str) -> None:
        self._db = db
        self._path = path
        self._key = key
        self._approver = approver

    @classmethod
    def open(cls, path: Path, key: SigningKey, approver_id: str) -> ApproverSigner:
        """Open (or create) the ledger at ``path`` for ``approver_id`` signing with ``key``."""
        if not approver_id:
            raise InputError("approver id must not be empty")
        try:
            db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                db.execute(statement)
        except sqlite3.Error as exc:
            raise InputError(f"{path}: cannot open the approver ledger: {exc}") from None
        logger.debug("opened ledger %s for approver %s", path, approver_id)
        return cls(db, path, key, approver_id)

    def __enter__(self) -> ApproverSigner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @property
    def approver(self) -> str:
        return self._approver

    def approve(
        self,
        *,
        agreement: str,
        action: Action,
        subject: str,
        version: int | None,
        now: int,
        overrides: Sequence[str] = (),
    ) -> Envelope:
        """Record, then sign, an approval under the next serial; return the envelope.

        ``version`` is the ruleset version of the subject: the update's version for ``install``
        and the extended update's version for ``extend`` (required for both).

        Raises:
            Rejected: ``rollback`` for an extension of a version below the newest approved one.
            InputError: a malformed digest, a missing version or a negative time.
        """
        check_digest(agreement, what="agreement")
        check_digest(subject, what="subject")
        if action in (Action.INSTALL, Action.EXTEND) and version is None:
            raise InputError(f"an {action.value} approval needs the ruleset version of its subject")
        if version is not None and version < 0:
            raise InputError(f"version {version} is negative")
        if now < 0:
            raise InputError(f"time {now} is negative")

        # Step 1: exclusive transaction.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # Step 2: never extend an older version than one already approved.
            newest = self._newest_version(agreement)
            if action == Action.EXTEND and newest is not None and version is not None and (
                version < newest
            ):
                raise Rejected(
                    Reason.ROLLBACK,
                    f"approver {self._approver} has approved version {newest} in this agreement "
                    f"and will not extend the older version {version}",
                    expected=f"version >= {newest}",
                    actual=str(version),
                )

            # Step 3: next serial.
            row = self._db.execute(
                "SELECT MAX(serial) FROM approvals WHERE approver = ?", (self._approver,)
            ).fetchone()
            serial = 0 if row[0] is None else int(row[0]) + 1

            # Step 4: record and fsync before signing.
            approval = Approval(agreement, action, subject, self._approver, serial, now,
                                tuple(overrides))
            self._db.execute(
                "INSERT INTO approvals (approver, serial, agreement, action, subject, version,"
                " keyid, statement) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self._approver, serial, agreement, action.value, subject, version,
                 self._key.keyid, approval.encode()),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

        # Step 5: sign.
        logger.debug("approver %s recorded serial %d for %s", self._approver, serial, subject)
        return Envelope.sign(approval, self._key)

    def _newest_version(self, agreement: str) -> int | None:
        row = self._db.execute(
            "SELECT MAX(version) FROM approvals WHERE approver = ? AND agreement = ?"
            " AND action IN ('install', 'extend')",
            (self._approver, agreement),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def records(self) -> list[LedgerRecord]:
        """Return every recorded approval of this approver, by serial."""
        rows = self._db.execute(
            "SELECT approver, serial, agreement, action, subject, version, keyid, statement"
            " FROM approvals WHERE approver = ? ORDER BY serial",
            (self._approver,),
        ).fetchall()
        return [
            LedgerRecord(str(a), int(s), str(g), Action(str(c)), str(j),
                         None if v is None else int(v), str(k), bytes(st))
            for a, s, g, c, j, v, k, st in rows
        ]

    def resign(self, serial: int) -> Envelope:
        """Sign the recorded statement of ``serial`` again (the same bytes as the first time)."""
        row = self._db.execute(
            "SELECT statement, keyid FROM approvals WHERE approver = ? AND serial = ?",
            (self._approver, serial),
        ).fetchone()
        if row is None:
            raise InputError(f"approver {self._approver} has no recorded serial {serial}")
        if row[1] != self._key.keyid:
            raise InputError(
                f"serial {serial} was signed with key {row[1]}, not with the key {self._key.keyid}"
            )
        statement = parse_statement(bytes(row[0]), Approval, what=f"ledger serial {serial}")
        return Envelope.sign(statement, self._key)
