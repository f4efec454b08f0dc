"""SQLAlchemy tables of the registry.

Every registered thing (flexHEG device, non-flexHEG chip, data center, fab, equipment) is one row
of ``entities``; device-only columns (identity key, manufacturer certificate, attestation state)
are NULL for the other kinds. Rows are changed only through :mod:`flexheg.registry._store`, which
writes the old and new values of every change into ``changes`` in the same transaction.

The schema is created and upgraded by the Alembic migrations in ``flexheg/registry/migrations``;
a change here needs a new migration there.
"""

from __future__ import annotations

import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class EntityKind(enum.StrEnum):
    """The five kinds of registered entity. The string values are stored and part of the API."""

    DEVICE = "device"
    CHIP = "chip"
    DATA_CENTER = "data-center"
    FAB = "fab"
    EQUIPMENT = "equipment"


class EntityStatus(enum.StrEnum):
    """Registration status of an entity."""

    ACTIVE = "active"
    MISSING = "missing"
    DISCARDED = "discarded"
    CLOSED = "closed"


class Role(enum.StrEnum):
    """Roles of API principals."""

    INTERNATIONAL_BODY = "international-body"
    INSPECTOR = "inspector"
    OWNER = "owner"
    LICENSING_STATE = "licensing-state"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Entity(Base):
    __tablename__ = "entities"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    region: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    risk_weight: Mapped[int] = mapped_column(Integer, default=1)
    # The data center that hosts a device or chip, or the fab that operates a piece of equipment.
    site_id: Mapped[str | None] = mapped_column(String(128), index=True, default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("census_imports.id"), default=None, index=True
    )
    # Device-only columns.
    identity_keyid: Mapped[str | None] = mapped_column(String(128), default=None, unique=True)
    identity_key: Mapped[str | None] = mapped_column(Text, default=None)
    manufacturer: Mapped[str | None] = mapped_column(String(128), default=None)
    certificate: Mapped[str | None] = mapped_column(Text, default=None)
    last_attested_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    attestation_count: Mapped[int] = mapped_column(Integer, default=0)
    away_since: Mapped[int | None] = mapped_column(BigInteger, default=None)
    custody_problem: Mapped[str | None] = mapped_column(Text, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (Index("ix_entities_kind_attested", "kind", "status", "last_attested_at"),)


class Change(Base):
    """One change of one entity, with the old and new values of the changed columns (JSON)."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity_id: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    old: Mapped[str] = mapped_column(Text)
    new: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[int] = mapped_column(BigInteger)


class CensusImport(Base):
    __tablename__ = "census_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(71))
    rows: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[int] = mapped_column(BigInteger)


class InspectionRound(Base):
    __tablename__ = "inspection_rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seed: Mapped[str] = mapped_column(Text)
    algorithm: Mapped[str] = mapped_column(String(64))
    sample_size: Mapped[int] = mapped_column(Integer)
    population: Mapped[int] = mapped_column(BigInteger)
    strata: Mapped[str] = mapped_column(Text)
    selection_digest: Mapped[str] = mapped_column(String(71))
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[int] = mapped_column(BigInteger)


class Inspection(Base):
    __tablename__ = "inspections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int | None] = mapped_column(
        ForeignKey("inspection_rounds.id"), index=True, default=None
    )
    entity_id: Mapped[str] = mapped_column(ForeignKey("entities.id"), index=True)
    stratum: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16))
    seen: Mapped[bool | None] = mapped_column(Boolean, default=None)
    seals_intact: Mapped[bool | None] = mapped_column(Boolean, default=None)
    power_log_checked: Mapped[bool | None] = mapped_column(Boolean, default=None)
    power_log_head: Mapped[str | None] = mapped_column(String(71), default=None)
    power_log_count: Mapped[int | None] = mapped_column(Integer, default=None)
    problems: Mapped[str] = mapped_column(Text, default="[]")
    notes: Mapped[str] = mapped_column(Text, default="")
    inspector: Mapped[str | None] = mapped_column(String(128), default=None)
    recorded_at: Mapped[int | None] = mapped_column(BigInteger, default=None)

    __table_args__ = (UniqueConstraint("round_id", "entity_id"),)


class PowerOffPeriod(Base):
    """A power-off period longer than the threshold, found in an inspected power log."""

    __tablename__ = "power_off_periods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("entities.id"), index=True)
    off_tick: Mapped[int] = mapped_column(BigInteger)
    on_tick: Mapped[int | None] = mapped_column(BigInteger, default=None)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"))
    explanation: Mapped[str | None] = mapped_column(Text, default=None)
    explained_by: Mapped[str | None] = mapped_column(String(128), default=None)
    explained_at: Mapped[int | None] = mapped_column(BigInteger, default=None)

    __table_args__ = (UniqueConstraint("device_id", "off_tick"),)


class LocationObservation(Base):
    __tablename__ = "location_observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("entities.id"), index=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(64))
    distance_km: Mapped[float] = mapped_column(Float)
    contradicts: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[int] = mapped_column(BigInteger)


class Party(Base):
    """A supply-chain party whose public key signs custody or destruction records."""

    __tablename__ = "parties"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    public_key: Mapped[str] = mapped_column(Text)
    keyid: Mapped[str] = mapped_column(String(128))
    at: Mapped[int] = mapped_column(BigInteger)


class CustodyRecord(Base):
    __tablename__ = "custody_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("entities.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    envelope: Mapped[str] = mapped_column(Text)
    from_party: Mapped[str] = mapped_column(String(128), default="")
    to_party: Mapped[str] = mapped_column(String(128), default="")
    stage: Mapped[str] = mapped_column(String(32), default="")
    tick: Mapped[int] = mapped_column(BigInteger)
    problem: Mapped[str | None] = mapped_column(Text, default=None)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[int] = mapped_column(BigInteger)


class LicenseDecision(Base):
    """A license renewal decision: the issued license, or the reasons for the refusal."""

    __tablename__ = "license_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("entities.id"), index=True)
    licensing_state: Mapped[str] = mapped_column(String(128))
    granted: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[str] = mapped_column(Text, default="[]")
    serial: Mapped[int | None] = mapped_column(Integer, default=None)
    not_before: Mapped[int | None] = mapped_column(BigInteger, default=None)
    not_after: Mapped[int | None] = mapped_column(BigInteger, default=None)
    envelope: Mapped[str | None] = mapped_column(Text, default=None)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[int] = mapped_column(BigInteger)


class OversightDraw(Base):
    """A production-oversight draw: its public seed, parameters and result (JSON)."""

    __tablename__ = "oversight_draws"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    seed: Mapped[str] = mapped_column(Text)
    parameters: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[int] = mapped_column(BigInteger)


class Principal(Base):
    """An API principal. Only the SHA-256 digest of its bearer token is stored."""

    __tablename__ = "principals"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    token_digest: Mapped[str] = mapped_column(String(71), unique=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[int] = mapped_column(BigInteger)
