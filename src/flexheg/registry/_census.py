"""Census import: chip makers' records of flexHEG devices and non-flexHEG chips, from CSV.

The file has a header row with the columns of :data:`CENSUS_COLUMNS` (in any order;
``site_id``, ``manufacturer``, ``identity_key`` and ``risk_weight`` may be left out or empty).
Every row is validated; a bad row is reported with its line number and reason. The import is
all-or-nothing: it runs in one transaction, and if any row is bad nothing is stored. At most
:data:`MAX_REPORTED_ERRORS` errors are reported.

Rows are inserted in chunks inside that transaction, so memory stays flat for large files. An id
that repeats an earlier row of the same file is found the same way as an id that was already
registered: by looking it up in the transaction.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from flexheg.errors import InputError
from flexheg.registry._entities import (
    check_coordinates,
    check_id,
    check_risk_weight,
    check_text,
    public_key_from_hex,
)
from flexheg.registry._models import CensusImport, Entity, EntityKind, EntityStatus
from flexheg.registry._oversight import OversightMixin

logger = logging.getLogger(__name__)

CENSUS_COLUMNS = (
    "kind",
    "id",
    "owner",
    "latitude",
    "longitude",
    "region",
    "risk_weight",
    "site_id",
    "manufacturer",
    "identity_key",
)
_REQUIRED = frozenset({"kind", "id", "owner", "latitude", "longitude", "region"})
_CENSUS_KINDS = (EntityKind.DEVICE.value, EntityKind.CHIP.value)
CHUNK_ROWS = 5000
MAX_REPORTED_ERRORS = 50


@dataclass(frozen=True)
class RowError:
    line: int
    message: str


class CensusImportError(InputError):
    """A census file with bad rows; nothing of it was stored."""

    def __init__(self, source: str, errors: list[RowError], *, truncated: bool) -> None:
        lines = [f"line {error.line}: {error.message}" for error in errors]
        more = " (more errors not shown)" if truncated else ""
        super().__init__(
            f"{source}: census import rejected, {len(errors)} bad row(s){more}; nothing was "
            "imported. Fix these rows and import the file again:\n" + "\n".join(lines)
        )
        self.errors = errors


def _float(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{name} {value!r} is not a number") from None


def _parse_row(row: dict[str, str], *, import_id: int, now: int) -> dict[str, Any]:
    kind = row["kind"].strip()
    if kind not in _CENSUS_KINDS:
        raise InputError(f"kind {kind!r} cannot be imported from a census; use device or chip")
    latitude, longitude = check_coordinates(
        _float(row["latitude"], "latitude"), _float(row["longitude"], "longitude")
    )
    weight_text = (row.get("risk_weight") or "").strip() or "1"
    if not (weight_text.isascii() and weight_text.isdigit()):
        raise InputError(f"risk weight {weight_text!r} is not an integer")
    key_text = (row.get("identity_key") or "").strip()
    site_text = (row.get("site_id") or "").strip()
    manufacturer = (row.get("manufacturer") or "").strip()
    values: dict[str, Any] = {
        "id": check_id(row["id"].strip(), what="id"),
        "kind": kind,
        "owner": check_text(row["owner"].strip(), what="owner"),
        "latitude": latitude,
        "longitude": longitude,
        "region": check_text(row["region"].strip(), what="region", max_length=64),
        "status": EntityStatus.ACTIVE.value,
        "risk_weight": check_risk_weight(int(weight_text)),
        "site_id": check_id(site_text, what="site id") if site_text else None,
        "description": "",
        "created_at": now,
        "updated_at": now,
        "import_id": import_id,
        "identity_keyid": None,
        "identity_key": None,
        "manufacturer": check_text(manufacturer, what="manufacturer") if manufacturer else None,
        "certificate": None,
        "last_attested_at": None,
        "attestation_count": 0,
        "away_since": None,
        "custody_problem": None,
        "version": 1,
    }
    if kind == EntityKind.DEVICE.value:
        if not key_text:
            raise InputError("a device row needs an identity_key (64 hex digits of an Ed25519 key)")
        key = public_key_from_hex(key_text, what="identity_key")
        values["identity_keyid"] = key.keyid
        values["identity_key"] = json.dumps(key.to_dict(), sort_keys=True)
    elif key_text:
        raise InputError("a non-flexHEG chip row cannot have an identity_key")
    return values


class _Digesting:
    """Lines of a byte stream, decoded as UTF-8 and hashed as they are read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._raw:
            self.sha256.update(line)
            self.bytes_read += len(line)
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"census file is not valid UTF-8 near byte {self.bytes_read}") from None


class CensusMixin(OversightMixin):
    def import_census(
        self,
        source: Path | IO[bytes],
        *,
        actor: str,
        now: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Import a census CSV file all-or-nothing.

        ``progress`` is called after each chunk with (rows done, bytes read).

        Raises:
            CensusImportError: a row is invalid or conflicts; the message lists each bad line.
            InputError: the file cannot be read or its header is wrong.
        """
        if isinstance(source, Path):
            try:
                handle: IO[bytes] = source.open("rb")
            except OSError as exc:
                raise InputError(f"{source}: cannot read census file: {exc.strerror}") from None
            name = str(source)
        else:
            handle = source
            name = getattr(source, "name", "census")
        with handle:
            return self._import_stream(_Digesting(handle), name, actor=actor, now=now, progress=progress)

    def _import_stream(
        self,
        stream: _Digesting,
        name: str,
        *,
        actor: str,
        now: int,
        progress: Callable[[int, int], None] | None,
    ) -> dict[str, Any]:
        reader = csv.DictReader(stream, strict=True)
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise InputError(
                f"{name}: line 1: invalid CSV header ({exc}); the first line must name the columns"
            ) from None
        missing = sorted(_REQUIRED - set(header))
        unknown = sorted(set(header) - set(CENSUS_COLUMNS))
        if missing or unknown:
            raise InputError(
                f"{name}: census header must name the columns {', '.join(CENSUS_COLUMNS)}; "
                f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}"
            )
        errors: list[RowError] = []
        rows = 0
        with self.db.write() as session:
            record = CensusImport(source=name, digest="", rows=0, actor=actor, at=now)
            session.add(record)
            session.flush()
            chunk: list[tuple[int, dict[str, Any]]] = []
            try:
                for row in reader:
                    line = reader.line_num
                    rows += 1
                    if None in row or any(value is None for value in row.values()):
                        errors.append(RowError(line, "wrong number of fields"))
                    else:
                        try:
                            chunk.append((line, _parse_row(row, import_id=record.id, now=now)))
                        except InputError as exc:
                            errors.append(RowError(line, str(exc)))
                    if len(chunk) >= CHUNK_ROWS:
                        self._insert_chunk(session, chunk, errors)
                        chunk = []
                        if progress is not None:
                            progress(rows, stream.bytes_read)
                    if len(errors) > MAX_REPORTED_ERRORS:
                        break
            except csv.Error as exc:
                errors.append(RowError(reader.line_num, f"invalid CSV: {exc}"))
            if chunk:
                self._insert_chunk(session, chunk, errors)
            if progress is not None:
                progress(rows, stream.bytes_read)
            if errors:
                truncated = len(errors) > MAX_REPORTED_ERRORS
                # Raising rolls the whole transaction back, including the chunks inserted so far.
                raise CensusImportError(name, errors[:MAX_REPORTED_ERRORS], truncated=truncated)
            if rows == 0:
                raise InputError(f"{name}: census file has a header but no rows")
            record.digest = "sha256:" + stream.sha256.hexdigest()
            record.rows = rows
            import_id = record.id
        logger.info("census import %d from %s: %d rows by %s", import_id, name, rows, actor)
        return {
            "import_id": import_id,
            "source": name,
            "rows": rows,
            "digest": "sha256:" + stream.sha256.hexdigest(),
        }

    @staticmethod
    def _insert_chunk(
        session: Session, chunk: list[tuple[int, dict[str, Any]]], errors: list[RowError]
    ) -> None:
        """Insert a chunk unless it conflicts; once any row failed, only look for conflicts."""
        ids = [values["id"] for _, values in chunk]
        keyids = [values["identity_keyid"] for _, values in chunk if values["identity_keyid"]]
        taken_ids = set(session.scalars(select(Entity.id).where(Entity.id.in_(ids))))
        taken_keys = (
            set(session.scalars(select(Entity.identity_keyid).where(Entity.identity_keyid.in_(keyids))))
            if keyids
            else set()
        )
        site_ids = {values["site_id"] for _, values in chunk if values["site_id"]}
        known_sites = (
            set(
                session.scalars(
                    select(Entity.id).where(
                        Entity.id.in_(site_ids), Entity.kind == EntityKind.DATA_CENTER.value
                    )
                )
            )
            if site_ids
            else set()
        )
        seen_ids: set[str] = set()
        seen_keys: set[str] = set()
        for line, values in chunk:
            entity_id, keyid, site_id = values["id"], values["identity_keyid"], values["site_id"]
            if entity_id in taken_ids or entity_id in seen_ids:
                errors.append(
                    RowError(line, f"id {entity_id!r} is already registered or repeats an earlier row")
                )
            if keyid is not None and (keyid in taken_keys or keyid in seen_keys):
                errors.append(
                    RowError(
                        line, f"identity key of {entity_id!r} is already registered or repeats an earlier row"
                    )
                )
            if site_id is not None and site_id not in known_sites:
                errors.append(RowError(line, f"site {site_id!r} is not a registered data center"))
            seen_ids.add(entity_id)
            if keyid is not None:
                seen_keys.add(keyid)
        # NOTE: after the first bad row, chunks are checked but not inserted, so a later row
        # that repeats an id of such a chunk is not reported in the same run.
        if errors:
            return
        # A Core insert sends the chunk as one executemany. The ORM bulk insert would split it
        # wherever the set of NULL columns changes, which is every switch between device and chip.
        table = Entity.metadata.tables["entities"]
        session.connection().execute(insert(table), [values for _, values in chunk])
