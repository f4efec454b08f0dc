"""Validated input records for registering entities, and their JSON form."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

from flexheg.errors import InputError
from flexheg.registry._models import Entity, EntityKind, EntityStatus
from flexheg.wire import Envelope, PublicKey

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_PUBLIC_HEX = re.compile(r"[0-9a-f]{64}")
MAX_RISK_WEIGHT = 100
EARTH_RADIUS_KM = 6371.0088

# Columns that an update may change, and the kinds of value each takes.
UPDATABLE_COLUMNS = ("owner", "latitude", "longitude", "region", "status", "risk_weight", "site_id",
                     "description")


def check_id(value: object, *, what: str) -> str:
    """Return ``value`` if it is a valid entity or party id, else raise InputError."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InputError(
            f"{what} {value!r} is invalid; use 1 to 128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_kind(value: object) -> EntityKind:
    try:
        return EntityKind(str(value))
    except ValueError:
        choices = ", ".join(kind.value for kind in EntityKind)
        raise InputError(f"entity kind {value!r} is unknown; use one of {choices}") from None


def check_status(value: object) -> EntityStatus:
    try:
        return EntityStatus(str(value))
    except ValueError:
        choices = ", ".join(status.value for status in EntityStatus)
        raise InputError(f"status {value!r} is unknown; use one of {choices}") from None


def check_text(value: object, *, what: str, max_length: int = 128) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise InputError(f"{what} is {len(value)} characters long; the maximum is {max_length}")
    return value


def check_coordinates(latitude: object, longitude: object) -> tuple[float, float]:
    """Return (latitude, longitude) in degrees if both are finite and in range."""
    values = []
    for name, value, limit in (("latitude", latitude, 90.0), ("longitude", longitude, 180.0)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{name} {value!r} is not a number of degrees")
        number = float(value)
        if not math.isfinite(number) or not -limit <= number <= limit:
            raise InputError(f"{name} {value!r} is out of range; use -{limit:g} to {limit:g} degrees")
        values.append(number)
    return values[0], values[1]


def check_risk_weight(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RISK_WEIGHT:
        raise InputError(f"risk weight {value!r} is invalid; use an integer from 1 to {MAX_RISK_WEIGHT}")
    return value


def public_key_from_hex(value: str, *, what: str) -> PublicKey:
    """Build an Ed25519 public key, with its securesystemslib key id, from 64 hex digits.

    The key id is the SHA-256 of the key's canonical JSON (keytype, keyval, scheme), which is
    how securesystemslib derives default key ids; building the string directly is several times
    faster than going through a ``cryptography`` key, which matters for census imports.
    """
    if not _PUBLIC_HEX.fullmatch(value):
        raise InputError(f"{what} {value!r} is not an Ed25519 public key; expected 64 lowercase hex digits")
    canonical = '{"keytype":"ed25519","keyval":{"public":"' + value + '"},"scheme":"ed25519"}'
    keyid = hashlib.sha256(canonical.encode("ascii")).hexdigest()
    return PublicKey(keyid, SSlibKey(keyid, "ed25519", "ed25519", {"public": value}))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Return the great-circle (haversine) distance in kilometres on a spherical Earth."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class NewEntity:
    """A validated registration request.

    Devices (kind ``device``) need an identity key; the manufacturer certificate is a DSSE
    envelope that the manufacturer signed over the device's identity.
    """

    id: str
    kind: EntityKind
    owner: str
    latitude: float
    longitude: float
    region: str
    risk_weight: int = 1
    site_id: str | None = None
    description: str = ""
    identity_key: PublicKey | None = None
    manufacturer: str | None = None
    certificate: Envelope | None = None

    @classmethod
    def build(
        cls,
        *,
        id: str,
        kind: str,
        owner: str,
        latitude: float,
        longitude: float,
        region: str,
        risk_weight: int = 1,
        site_id: str | None = None,
        description: str = "",
        identity_key: PublicKey | None = None,
        manufacturer: str | None = None,
        certificate: Envelope | None = None,
    ) -> NewEntity:
        """Validate every field and return the request.

        Raises:
            InputError: a field is invalid; the message names it and the accepted values.
        """
        entity_kind = check_kind(kind)
        lat, lon = check_coordinates(latitude, longitude)
        if entity_kind is EntityKind.DEVICE and identity_key is None:
            raise InputError(f"device {id!r} has no identity key; a flexHEG device needs one")
        if entity_kind is not EntityKind.DEVICE and (identity_key or certificate):
            raise InputError(
                f"entity {id!r} of kind {entity_kind.value} cannot have an identity key or "
                "certificate; only devices have them"
            )
        if len(description) > 4096:
            raise InputError(f"description of {id!r} is longer than 4096 characters")
        return cls(
            id=check_id(id, what="entity id"),
            kind=entity_kind,
            owner=check_text(owner, what="owner"),
            latitude=lat,
            longitude=lon,
            region=check_text(region, what="region", max_length=64),
            risk_weight=check_risk_weight(risk_weight),
            site_id=None if site_id is None else check_id(site_id, what="site id"),
            description=description,
            identity_key=identity_key,
            manufacturer=None if manufacturer is None else check_text(manufacturer, what="manufacturer"),
            certificate=certificate,
        )


def entity_to_dict(entity: Entity) -> dict[str, Any]:
    """Return the JSON form of an entity, as the API and the CLI show it."""
    document: dict[str, Any] = {
        "id": entity.id,
        "kind": entity.kind,
        "owner": entity.owner,
        "latitude": entity.latitude,
        "longitude": entity.longitude,
        "region": entity.region,
        "status": entity.status,
        "risk_weight": entity.risk_weight,
        "site_id": entity.site_id,
        "description": entity.description,
        "created_at": entity.created_at,
        "updated_at": entity.updated_at,
        "version": entity.version,
    }
    if entity.kind == EntityKind.DEVICE:
        document.update(
            identity_key=None if entity.identity_key is None else json.loads(entity.identity_key),
            manufacturer=entity.manufacturer,
            certificate=None if entity.certificate is None else json.loads(entity.certificate),
            last_attested_at=entity.last_attested_at,
            attestation_count=entity.attestation_count,
            away_since=entity.away_since,
            custody_problem=entity.custody_problem,
        )
    return document
