"""The registry's entity store: registration, updates with history, attestations, locations
and the missing-chip report.

Every method that changes a row takes the acting principal and the current time (a tick) and
writes a :class:`~flexheg.registry._models.Change` with the old and new values in the same
transaction. Methods never read the clock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flexheg.device import DeviceCertificate
from flexheg.errors import InputError
from flexheg.registry._db import Database
from flexheg.registry._entities import (
    UPDATABLE_COLUMNS,
    NewEntity,
    check_coordinates,
    check_id,
    check_risk_weight,
    check_status,
    check_text,
    distance_km,
    entity_to_dict,
)
from flexheg.registry._models import (
    Change,
    Entity,
    EntityKind,
    EntityStatus,
    LocationObservation,
    Party,
)
from flexheg.wire import PublicKey

logger = logging.getLogger(__name__)


class NotFoundError(InputError):
    """The requested entity does not exist, or the caller may not see it."""


class ConflictError(InputError):
    """The request conflicts with what is registered (a duplicate id or key)."""


@dataclass(frozen=True)
class RegistryConfig:
    """Thresholds of the registry's checks. Durations are in seconds, distances in kilometres."""

    attestation_deadline: int = 7 * 86400
    location_tolerance_km: float = 50.0
    power_off_threshold: int = 3600
    license_validity: int = 30 * 86400

    def __post_init__(self) -> None:
        for name in ("attestation_deadline", "power_off_threshold", "license_validity"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be a positive number of seconds")
        if not self.location_tolerance_km > 0:
            raise InputError("location_tolerance_km must be a positive number of kilometres")


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def record_change(
    session: Session,
    entity: Entity,
    values: Mapping[str, Any],
    *,
    action: str,
    actor: str,
    reason: str,
    now: int,
) -> dict[str, Any]:
    """Set ``values`` on ``entity`` and record the old and new values. Return the changed ones.

    Columns whose value does not change are left out; nothing is written if none changes.
    """
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for column, value in values.items():
        current = getattr(entity, column)
        if current != value:
            old[column] = current
            new[column] = value
    if not new:
        return new
    for column, value in new.items():
        setattr(entity, column, value)
    entity.updated_at = now
    entity.version += 1
    session.add(
        Change(
            entity_id=entity.id,
            action=action,
            old=_json(old),
            new=_json(new),
            actor=actor,
            reason=reason,
            at=now,
        )
    )
    logger.debug("entity %s: %s by %s changed %s", entity.id, action, actor, sorted(new))
    return new


class RegistryCore:
    """Entity registration and queries over one database."""

    def __init__(self, db: Database, config: RegistryConfig | None = None) -> None:
        self.db = db
        self.config = config or RegistryConfig()

    def close(self) -> None:
        self.db.close()

    # Helpers shared by the other parts of the registry.

    def _entity(
        self, session: Session, entity_id: str, *, owner: str | None = None, lock: bool = False
    ) -> Entity:
        entity = session.get(Entity, entity_id, with_for_update=lock)
        if entity is None or (owner is not None and entity.owner != owner):
            raise NotFoundError(f"entity {entity_id!r} is not registered")
        return entity

    def _device(
        self, session: Session, device_id: str, *, owner: str | None = None, lock: bool = False
    ) -> Entity:
        entity = self._entity(session, device_id, owner=owner, lock=lock)
        if entity.kind != EntityKind.DEVICE:
            raise InputError(f"entity {device_id!r} is a {entity.kind}, not a flexHEG device")
        return entity

    # Registration and updates.

    def register(self, request: NewEntity, *, actor: str, now: int) -> dict[str, Any]:
        """Register one entity and record its creation.

        Raises:
            ConflictError: the id or the identity key is already registered.
            InputError: the site does not exist or the certificate is not signed by the
                registered manufacturer.
        """
        entity = Entity(
            id=request.id,
            kind=request.kind.value,
            owner=request.owner,
            latitude=request.latitude,
            longitude=request.longitude,
            region=request.region,
            status=EntityStatus.ACTIVE.value,
            risk_weight=request.risk_weight,
            site_id=request.site_id,
            description=request.description,
            created_at=now,
            updated_at=now,
            version=1,
            attestation_count=0,
        )
        if request.identity_key is not None:
            entity.identity_keyid = request.identity_key.keyid
            entity.identity_key = _json(request.identity_key.to_dict())
            entity.manufacturer = request.manufacturer
        if request.certificate is not None:
            entity.certificate = _json(request.certificate.to_dict())
        try:
            with self.db.write() as session:
                if request.site_id is not None:
                    self._entity(session, request.site_id)
                if request.certificate is not None:
                    self._check_certificate(session, request)
                if session.get(Entity, request.id) is not None:
                    raise ConflictError(f"entity {request.id!r} is already registered")
                session.add(entity)
                session.add(
                    Change(
                        entity_id=request.id,
                        action="register",
                        old="{}",
                        new=_json(entity_to_dict(entity)),
                        actor=actor,
                        reason="",
                        at=now,
                    )
                )
                session.flush()
        except IntegrityError as exc:
            raise ConflictError(
                f"entity {request.id!r} conflicts with a registered entity (same id or identity "
                f"key): {exc.orig}"
            ) from None
        logger.info("registered %s %s for %s", request.kind.value, request.id, request.owner)
        return entity_to_dict(entity)

    def _check_certificate(self, session: Session, request: NewEntity) -> None:
        """Check that the registered manufacturer certified this device id and identity key."""
        assert request.certificate is not None
        assert request.identity_key is not None
        if request.manufacturer is None:
            raise InputError(f"device {request.id!r} has a certificate but no manufacturer")
        party = session.get(Party, request.manufacturer)
        if party is None or party.role != "manufacturer":
            raise InputError(
                f"manufacturer {request.manufacturer!r} is not a registered party with the "
                "manufacturer role; register its public key first"
            )
        certificate = request.certificate.statement(DeviceCertificate, what="device certificate")
        if certificate.device_id != request.id:
            raise InputError(
                f"the certificate is for device {certificate.device_id!r}, not {request.id!r}"
            )
        if certificate.identity_key.keyid != request.identity_key.keyid:
            raise InputError(
                f"the certificate of device {request.id!r} certifies identity key "
                f"{certificate.identity_key.keyid}, not {request.identity_key.keyid}"
            )
        key = PublicKey.from_dict(json.loads(party.public_key), where=f"key of party {party.name}")
        if not request.certificate.verified_by({key.keyid: key}):
            raise InputError(
                f"the certificate of device {request.id!r} carries no valid signature of "
                f"manufacturer {request.manufacturer!r}"
            )

    def update(
        self,
        entity_id: str,
        values: Mapping[str, Any],
        *,
        actor: str,
        reason: str,
        now: int,
    ) -> dict[str, Any]:
        """Change the given columns of an entity and record the old values.

        Raises:
            InputError: an unknown column or an invalid value.
            NotFoundError: the entity is not registered.
        """
        checked = self._check_update(values)
        with self.db.write() as session:
            entity = self._entity(session, entity_id, lock=True)
            if "site_id" in checked and checked["site_id"] is not None:
                self._entity(session, checked["site_id"])
            record_change(session, entity, checked, action="update", actor=actor, reason=reason,
                          now=now)
            return entity_to_dict(entity)

    @staticmethod
    def _check_update(values: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(values) - set(UPDATABLE_COLUMNS))
        if unknown:
            raise InputError(
                f"cannot update {', '.join(unknown)}; updatable fields: {', '.join(UPDATABLE_COLUMNS)}"
            )
        checked = dict(values)
        if "latitude" in values or "longitude" in values:
            if not ("latitude" in values and "longitude" in values):
                raise InputError("update latitude and longitude together")
            checked["latitude"], checked["longitude"] = check_coordinates(
                values["latitude"], values["longitude"]
            )
        if "owner" in values:
            check_text(values["owner"], what="owner")
        if "region" in values:
            check_text(values["region"], what="region", max_length=64)
        if "status" in values:
            checked["status"] = check_status(values["status"]).value
        if "risk_weight" in values:
            check_risk_weight(values["risk_weight"])
        if values.get("site_id") is not None:
            check_id(values["site_id"], what="site id")
        if "description" in values and not isinstance(values["description"], str):
            raise InputError("description must be a string")
        return checked

    # Queries.

    def get(self, entity_id: str, *, owner: str | None = None) -> dict[str, Any]:
        """Return one entity; with ``owner``, only if that owner holds it."""
        with self.db.read() as session:
            return entity_to_dict(self._entity(session, entity_id, owner=owner))

    def list_entities(
        self,
        *,
        kind: str | None = None,
        owner: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Return entities ordered by id, optionally filtered."""
        if not 1 <= limit <= 10_000 or offset < 0:
            raise InputError("limit must be 1 to 10000 and offset must not be negative")
        query = select(Entity).order_by(Entity.id).limit(limit).offset(offset)
        if kind is not None:
            query = query.where(Entity.kind == kind)
        if owner is not None:
            query = query.where(Entity.owner == owner)
        if status is not None:
            query = query.where(Entity.status == status)
        with self.db.read() as session:
            return [entity_to_dict(entity) for entity in session.scalars(query)]

    def count(self, *, kind: str | None = None) -> int:
        query = select(func.count()).select_from(Entity)
        if kind is not None:
            query = query.where(Entity.kind == kind)
        with self.db.read() as session:
            return int(session.scalar(query) or 0)

    def history(self, entity_id: str, *, owner: str | None = None) -> list[dict[str, Any]]:
        """Return every recorded change of an entity, oldest first."""
        with self.db.read() as session:
            self._entity(session, entity_id, owner=owner)
            changes = session.scalars(
                select(Change).where(Change.entity_id == entity_id).order_by(Change.id)
            )
            return [
                {
                    "id": change.id,
                    "action": change.action,
                    "old": json.loads(change.old),
                    "new": json.loads(change.new),
                    "actor": change.actor,
                    "reason": change.reason,
                    "at": change.at,
                }
                for change in changes
            ]

    # Attestation and location.

    def record_attestation(self, device_id: str, *, tick: int, actor: str, now: int) -> dict[str, Any]:
        """Record that a device attested at ``tick`` (for example, evidence a verifier appraised).

        Raises:
            InputError: the tick lies in the future or before the last recorded attestation.
        """
        if tick > now:
            raise InputError(f"attestation tick {tick} lies after the current time {now}")
        with self.db.write() as session:
            device = self._device(session, device_id, lock=True)
            if device.last_attested_at is not None and tick < device.last_attested_at:
                raise InputError(
                    f"attestation tick {tick} of {device_id!r} is older than the recorded "
                    f"{device.last_attested_at}"
                )
            record_change(
                session,
                device,
                {"last_attested_at": tick, "attestation_count": device.attestation_count + 1},
                action="attestation",
                actor=actor,
                reason="",
                now=now,
            )
            return entity_to_dict(device)

    def record_location(
        self,
        device_id: str,
        *,
        latitude: float,
        longitude: float,
        source: str,
        actor: str,
        now: int,
    ) -> dict[str, Any]:
        """Record where a device was observed (by an inspector or a location proof).

        An observation farther than ``config.location_tolerance_km`` from the registered location
        contradicts the registration and sets ``away_since``; one inside the tolerance clears it.
        """
        lat, lon = check_coordinates(latitude, longitude)
        check_text(source, what="location source", max_length=64)
        with self.db.write() as session:
            device = self._device(session, device_id, lock=True)
            distance = distance_km(device.latitude, device.longitude, lat, lon)
            contradicts = distance > self.config.location_tolerance_km
            observation = LocationObservation(
                device_id=device_id,
                latitude=lat,
                longitude=lon,
                source=source,
                distance_km=distance,
                contradicts=contradicts,
                actor=actor,
                at=now,
            )
            session.add(observation)
            away_since = (device.away_since or now) if contradicts else None
            record_change(
                session,
                device,
                {"away_since": away_since},
                action="location",
                actor=actor,
                reason=f"observed {distance:.1f} km from the registered location by {source}",
                now=now,
            )
            if contradicts:
                logger.warning(
                    "device %s observed %.1f km from its registered location", device_id, distance
                )
            return {
                "device_id": device_id,
                "latitude": lat,
                "longitude": lon,
                "source": source,
                "distance_km": distance,
                "contradicts_registration": contradicts,
                "at": now,
            }

    def missing_report(self, *, now: int, limit: int | None = None) -> list[dict[str, Any]]:
        """List registered devices that have not attested within the deadline, or whose last
        location observation contradicts their registration, or that an inspection found missing.

        A device that never attested counts from its registration time.
        """
        cutoff = now - self.config.attestation_deadline
        overdue = or_(
            Entity.last_attested_at < cutoff,
            and_(Entity.last_attested_at.is_(None), Entity.created_at < cutoff),
        )
        query = (
            select(
                Entity.id,
                Entity.owner,
                Entity.region,
                Entity.status,
                Entity.last_attested_at,
                Entity.created_at,
                Entity.away_since,
            )
            .where(
                Entity.kind == EntityKind.DEVICE.value,
                Entity.status.in_([EntityStatus.ACTIVE.value, EntityStatus.MISSING.value]),
                or_(overdue, Entity.away_since.is_not(None),
                    Entity.status == EntityStatus.MISSING.value),
            )
            .order_by(Entity.id)
        )
        if limit is not None:
            query = query.limit(limit)
        report = []
        with self.db.read() as session:
            for row in session.execute(query):
                reasons = []
                if row.status == EntityStatus.MISSING.value:
                    reasons.append("found-missing")
                last = row.last_attested_at if row.last_attested_at is not None else row.created_at
                if last < cutoff:
                    reasons.append("attestation-overdue")
                if row.away_since is not None:
                    reasons.append("location-contradicts-registration")
                report.append(
                    {
                        "device_id": row.id,
                        "owner": row.owner,
                        "region": row.region,
                        "last_attested_at": row.last_attested_at,
                        "away_since": row.away_since,
                        "reasons": reasons,
                    }
                )
        return report
