"""Location proofs: landmark challenges and responses, distance bounds, regions and decisions.

Everything here is pure: functions take bytes, keys and an explicit time and never touch a
socket or a clock. The measuring client and the landmark server live in :mod:`flexheg.location`.

A device sends a landmark a fresh random nonce, the landmark returns a signed
:class:`LandmarkResponse` naming that nonce, and the device measures the round trip on its own
monotonic clock. No signal travels faster than the assumed signal speed, and the landmark holds
every response for at least the processing time it declares, so

    distance <= signal_speed * (round_trip - declared_processing) / 2.

A relay or a slow path only adds delay and therefore only widens the bound. The device signs the
result as a :class:`LocationProof`.

Invariants:

* A distance bound is rounded up, never down.
* A feasible region is the intersection of spherical caps, one per proof, each widened by the
  largest ratio between the spherical-model and the WGS-84 distance (:data:`EARTH_MODEL_FACTOR`).
* Containment is sound: :meth:`FeasibleRegion.contained_in` returns True only when it has proven
  that every point of the feasible region lies in the shape, and only when the feasible region
  is non-empty. When it cannot decide within its work budget it returns False.
* An empty feasible region (proofs that contradict each other) is never "inside" anything.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import MAX_SAFE_INTEGER, Envelope, Fields, PublicKey, Statement

logger = logging.getLogger(__name__)

SPEED_OF_LIGHT_M_PER_S = 299_792_458
"""Speed of light in vacuum, the default signal speed: no medium carries a signal faster."""

EARTH_MEAN_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), the radius of the spherical model used for all geometry."""

_WGS84_A = 6_378_137.0
_WGS84_B = _WGS84_A * (1 - 1 / 298.257223563)

EARTH_MODEL_FACTOR = EARTH_MEAN_RADIUS_M * _WGS84_A / (_WGS84_B * _WGS84_B) + 1e-9
"""Upper bound of spherical-model distance over WGS-84 geodesic distance (about 1.0056).

The WGS-84 radius of curvature is never below b**2/a, so a geodesic of length g on the ellipsoid
maps to at most ``g * R / (b**2/a)`` on the sphere of mean radius R. The tests check this factor
against GeographicLib.
"""

NONCE_HEX_LENGTH = 64
"""A nonce is 32 random bytes written as 64 lowercase hex digits."""

NO_PROOF_AGE_S = MAX_SAFE_INTEGER
"""``location.proof_age_s`` when no valid proof exists, so that any age limit in a rule fails."""

MAX_SIGNAL_SPEED_M_PER_S = 2**40
MAX_PROCESSING_US = 10_000_000
MAX_RTT_US = 10**12

DEFAULT_MAX_CLOCK_SKEW_S = 30
DEFAULT_MAX_TRAVEL_SPEED_M_PER_S = 300
"""Fastest a device is assumed to move between two proofs (an airliner cruises at about 250 m/s)."""

_NONCE_RE = re.compile(r"[0-9a-f]{64}")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_MICRODEG_LAT = 90_000_000
_MICRODEG_LON = 180_000_000

# Angular slack added in the cautious direction of every floating-point comparison (about 6 mm).
_ANGLE_EPS = 1e-9
# Cells below this circumscribed radius are not split further (about 1 m).
_MIN_CELL_RAD = 1.0 / EARTH_MEAN_RADIUS_M
DEFAULT_CELL_BUDGET = 20_000
"""Number of cells that one containment or emptiness search may examine before giving up."""


def _check_name(value: str, what: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise InputError(
            f"{what}: {value!r} is not a valid name; use 1 to 64 characters of a-z, 0-9, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    return value


def _check_nonce(value: str, what: str) -> str:
    if not _NONCE_RE.fullmatch(value):
        raise InputError(f"{what}: {value!r} is not a nonce; expected 64 lowercase hex digits")
    return value


# --- Statements ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocationChallenge(Statement):
    """The unsigned request a device sends to a landmark, carrying a fresh nonce."""

    TYPE = "flexheg.dev/location-challenge/v1"

    landmark: str
    nonce: str

    def __post_init__(self) -> None:
        _check_name(self.landmark, "location challenge landmark")
        _check_nonce(self.nonce, "location challenge nonce")

    def body(self) -> dict[str, Any]:
        return {"landmark": self.landmark, "nonce": self.nonce}

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        challenge = cls(landmark=fields.str("landmark"), nonce=fields.str("nonce"))
        fields.done()
        return challenge


@dataclass(frozen=True)
class LandmarkResponse(Statement):
    """A landmark's signed response to one challenge.

    ``processing_us`` is the time the landmark held the challenge before sending this response,
    as a lower bound: the landmark never sends earlier than that after receiving the challenge.
    ``time`` is the landmark's clock when it signed, as a tick.
    """

    TYPE = "flexheg.dev/landmark-response/v1"

    landmark: str
    nonce: str
    time: int
    processing_us: int

    def __post_init__(self) -> None:
        _check_name(self.landmark, "landmark response landmark")
        _check_nonce(self.nonce, "landmark response nonce")
        _check_range(self.time, 0, MAX_SAFE_INTEGER, "landmark response time")
        _check_range(self.processing_us, 0, MAX_PROCESSING_US, "landmark response processing_us")

    def body(self) -> dict[str, Any]:
        return {
            "landmark": self.landmark,
            "nonce": self.nonce,
            "time": self.time,
            "processing_us": self.processing_us,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        response = cls(
            landmark=fields.str("landmark"),
            nonce=fields.str("nonce"),
            time=fields.int("time", minimum=0, maximum=MAX_SAFE_INTEGER),
            processing_us=fields.int("processing_us", minimum=0, maximum=MAX_PROCESSING_US),
        )
        fields.done()
        return response


def _check_range(value: int, minimum: int, maximum: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what}: expected an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise InputError(f"{what}: {value} is outside the range {minimum}..{maximum}")


def distance_bound_m(rtt_us: int, processing_us: int, signal_speed_m_per_s: int) -> int:
    """Return the largest distance in metres consistent with a round trip, rounded up.

    Raises:
        InputError: a negative value, or a processing time longer than the round trip.
    """
    _check_range(rtt_us, 0, MAX_RTT_US, "rtt_us")
    _check_range(processing_us, 0, MAX_PROCESSING_US, "processing_us")
    _check_range(signal_speed_m_per_s, 1, MAX_SIGNAL_SPEED_M_PER_S, "signal_speed_m_per_s")
    if processing_us > rtt_us:
        raise InputError(
            f"processing time {processing_us} us exceeds the round trip {rtt_us} us; "
            "the landmark's declared processing time cannot be longer than the measured round trip"
        )
    flight_us = rtt_us - processing_us
    return -(-(signal_speed_m_per_s * flight_us) // 2_000_000)


@dataclass(frozen=True)
class LocationProof(Statement):
    """A device's signed record of one landmark round trip and the distance bound it implies.

    ``response`` is the landmark's signed response envelope, so that anyone holding the
    landmark's public key can check that the landmark responded to this nonce. ``time`` is the
    device tick of the measurement. ``distance_bound_m`` always equals
    :func:`distance_bound_m` of the other fields; parsing rejects a proof where it does not.
    """

    TYPE = "flexheg.dev/location-proof/v1"

    landmark: str
    nonce: str
    rtt_us: int
    processing_us: int
    signal_speed_m_per_s: int
    distance_bound_m: int
    time: int
    response: Envelope

    def __post_init__(self) -> None:
        _check_name(self.landmark, "location proof landmark")
        _check_nonce(self.nonce, "location proof nonce")
        _check_range(self.time, 0, MAX_SAFE_INTEGER, "location proof time")
        expected = distance_bound_m(self.rtt_us, self.processing_us, self.signal_speed_m_per_s)
        if self.distance_bound_m != expected:
            raise InputError(
                f"location proof distance_bound_m: {self.distance_bound_m} does not match the "
                f"round trip; expected {expected} m from rtt_us={self.rtt_us}, "
                f"processing_us={self.processing_us}, "
                f"signal_speed_m_per_s={self.signal_speed_m_per_s}"
            )

    def body(self) -> dict[str, Any]:
        return {
            "landmark": self.landmark,
            "nonce": self.nonce,
            "rtt_us": self.rtt_us,
            "processing_us": self.processing_us,
            "signal_speed_m_per_s": self.signal_speed_m_per_s,
            "distance_bound_m": self.distance_bound_m,
            "time": self.time,
            "response": self.response.to_dict(),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        proof = cls(
            landmark=fields.str("landmark"),
            nonce=fields.str("nonce"),
            rtt_us=fields.int("rtt_us", minimum=0, maximum=MAX_RTT_US),
            processing_us=fields.int("processing_us", minimum=0, maximum=MAX_PROCESSING_US),
            signal_speed_m_per_s=fields.int(
                "signal_speed_m_per_s", minimum=1, maximum=MAX_SIGNAL_SPEED_M_PER_S
            ),
            distance_bound_m=fields.int("distance_bound_m", minimum=0, maximum=MAX_SAFE_INTEGER),
            time=fields.int("time", minimum=0, maximum=MAX_SAFE_INTEGER),
            response=Envelope.from_dict(fields.raw("response"), what=fields.path("response")),
        )
        fields.done()
        return proof


# --- Places, landmarks, regions and the policy -------------------------------------------------


@dataclass(frozen=True)
class GeoPoint:
    """A point given by latitude and longitude in integer microdegrees."""

    latitude_microdeg: int
    longitude_microdeg: int

    def __post_init__(self) -> None:
        _check_range(self.latitude_microdeg, -_MICRODEG_LAT, _MICRODEG_LAT, "latitude_microdeg")
        _check_range(self.longitude_microdeg, -_MICRODEG_LON, _MICRODEG_LON, "longitude_microdeg")

    @classmethod
    def from_degrees(cls, latitude: float, longitude: float) -> GeoPoint:
        for name, value in (("latitude", latitude), ("longitude", longitude)):
            if not math.isfinite(value):
                raise InputError(f"{name} {value} is not a finite number of degrees")
        return cls(round(latitude * 1_000_000), round(longitude * 1_000_000))

    def to_dict(self) -> dict[str, int]:
        return {
            "latitude_microdeg": self.latitude_microdeg,
            "longitude_microdeg": self.longitude_microdeg,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> GeoPoint:
        return cls(
            fields.int("latitude_microdeg", minimum=-_MICRODEG_LAT, maximum=_MICRODEG_LAT),
            fields.int("longitude_microdeg", minimum=-_MICRODEG_LON, maximum=_MICRODEG_LON),
        )

    def radians(self) -> tuple[float, float]:
        return (
            math.radians(self.latitude_microdeg / 1_000_000),
            math.radians(self.longitude_microdeg / 1_000_000),
        )


@dataclass(frozen=True)
class Landmark:
    """A landmark the verifier trusts: its id, signing key, position and processing bound.

    ``max_processing_us`` caps the processing time the landmark may declare in a response.
    """

    id: str
    key: PublicKey
    position: GeoPoint
    max_processing_us: int

    def __post_init__(self) -> None:
        _check_name(self.id, "landmark id")
        _check_range(self.max_processing_us, 0, MAX_PROCESSING_US, f"landmark {self.id} max_processing_us")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key.to_dict(),
            **self.position.to_dict(),
            "max_processing_us": self.max_processing_us,
        }

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Landmark:
        fields = Fields(value, where)
        landmark = cls(
            id=_check_name(fields.str("id"), fields.path("id")),
            key=PublicKey.from_dict(fields.raw("key"), where=fields.path("key")),
            position=GeoPoint.from_fields(fields),
            max_processing_us=fields.int("max_processing_us", minimum=0, maximum=MAX_PROCESSING_US),
        )
        fields.done()
        return landmark


@dataclass(frozen=True)
class Disc:
    """All points within ``radius_m`` metres of ``center`` on the spherical Earth model."""

    center: GeoPoint
    radius_m: int

    def __post_init__(self) -> None:
        _check_range(self.radius_m, 0, MAX_SAFE_INTEGER, "disc radius_m")

    def to_dict(self) -> dict[str, Any]:
        return {"disc": {**self.center.to_dict(), "radius_m": self.radius_m}}


@dataclass(frozen=True)
class Polygon:
    """A simple polygon with great-circle edges, given by its vertices in order.

    The polygon must lie in an open hemisphere (every vertex within 80 degrees of the vertex
    mean) and must not cross itself. Either orientation is accepted.
    """

    vertices: tuple[GeoPoint, ...]
    _geometry: _PolygonShape = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Validate once and keep the projected form; the dataclass is frozen.
        object.__setattr__(self, "_geometry", _PolygonShape.build(self))

    def to_dict(self) -> dict[str, Any]:
        return {"polygon": [vertex.to_dict() for vertex in self.vertices]}


Shape = Disc | Polygon


@dataclass(frozen=True)
class Region:
    """A named disc or polygon that rules can require a device to be inside."""

    name: str
    shape: Shape

    def __post_init__(self) -> None:
        _check_name(self.name, "region name")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.shape.to_dict()}

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Region:
        fields = Fields(value, where)
        name = _check_name(fields.str("name"), fields.path("name"))
        shape: Shape
        if fields.has("disc") == fields.has("polygon"):
            raise InputError(f"{where}: give exactly one of 'disc' or 'polygon'")
        if fields.has("disc"):
            disc = fields.object("disc")
            shape = Disc(GeoPoint.from_fields(disc), disc.int("radius_m", minimum=0))
            disc.done()
        else:
            vertices = []
            for index, item in enumerate(fields.list("polygon")):
                vertex = Fields(item, f"{fields.path('polygon')}[{index}]")
                vertices.append(GeoPoint.from_fields(vertex))
                vertex.done()
            try:
                shape = Polygon(tuple(vertices))
            except InputError as exc:
                raise InputError(f"{fields.path('polygon')}: {exc}") from None
        fields.done()
        return cls(name, shape)


@dataclass(frozen=True)
class LocationPolicy:
    """The verifier's configuration: trusted landmarks, named regions and the limits.

    Attributes:
        landmarks: trusted landmarks by id.
        regions: named regions, in the order in which decisions report them.
        max_proof_age_s: a proof older than this no longer counts.
        signal_speed_m_per_s: the lowest signal speed a proof may assume; proofs that assumed a
            slower signal (and therefore a tighter bound) are rejected.
        max_travel_speed_m_per_s: how fast a device may move between two proofs; older proofs
            are widened by this speed times their age relative to the newest proof.
        max_clock_skew_s: largest difference allowed between a landmark's and the device's time.
    """

    landmarks: Mapping[str, Landmark]
    regions: tuple[Region, ...] = ()
    max_proof_age_s: int = 86_400
    signal_speed_m_per_s: int = SPEED_OF_LIGHT_M_PER_S
    max_travel_speed_m_per_s: int = DEFAULT_MAX_TRAVEL_SPEED_M_PER_S
    max_clock_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S

    def __post_init__(self) -> None:
        for landmark_id, landmark in self.landmarks.items():
            if landmark_id != landmark.id:
                raise InputError(f"landmark {landmark.id} is filed under the id {landmark_id!r}")
        names = [region.name for region in self.regions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InputError(f"region names must be unique; repeated: {', '.join(duplicates)}")
        _check_range(self.max_proof_age_s, 0, MAX_SAFE_INTEGER, "max_proof_age_s")
        _check_range(self.signal_speed_m_per_s, 1, MAX_SIGNAL_SPEED_M_PER_S, "signal_speed_m_per_s")
        _check_range(self.max_travel_speed_m_per_s, 0, SPEED_OF_LIGHT_M_PER_S, "max_travel_speed_m_per_s")
        _check_range(self.max_clock_skew_s, 0, MAX_SAFE_INTEGER, "max_clock_skew_s")

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        known = ", ".join(region.name for region in self.regions) or "none"
        raise InputError(f"region {name!r} is not configured; configured regions: {known}")

    def landmark(self, landmark_id: str) -> Landmark:
        landmark = self.landmarks.get(landmark_id)
        if landmark is None:
            known = ", ".join(sorted(self.landmarks)) or "none"
            raise InputError(f"landmark {landmark_id!r} is not configured; configured: {known}")
        return landmark

    def to_dict(self) -> dict[str, Any]:
        return {
            "landmarks": [self.landmarks[key].to_dict() for key in sorted(self.landmarks)],
            "regions": [region.to_dict() for region in self.regions],
            "max_proof_age_s": self.max_proof_age_s,
            "signal_speed_m_per_s": self.signal_speed_m_per_s,
            "max_travel_speed_m_per_s": self.max_travel_speed_m_per_s,
            "max_clock_skew_s": self.max_clock_skew_s,
        }

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> LocationPolicy:
        fields = Fields(value, where)
        landmarks: dict[str, Landmark] = {}
        for index, item in enumerate(fields.list("landmarks")):
            landmark = Landmark.from_dict(item, where=f"{fields.path('landmarks')}[{index}]")
            if landmark.id in landmarks:
                raise InputError(f"{fields.path('landmarks')}: landmark {landmark.id} is listed twice")
            landmarks[landmark.id] = landmark
        regions = tuple(
            Region.from_dict(item, where=f"{fields.path('regions')}[{index}]")
            for index, item in enumerate(fields.list("regions"))
        )
        policy = cls(
            landmarks=landmarks,
            regions=regions,
            max_proof_age_s=fields.int("max_proof_age_s", minimum=0),
            signal_speed_m_per_s=fields.int(
                "signal_speed_m_per_s", minimum=1, maximum=MAX_SIGNAL_SPEED_M_PER_S
            ),
            max_travel_speed_m_per_s=fields.int(
                "max_travel_speed_m_per_s", minimum=0, maximum=SPEED_OF_LIGHT_M_PER_S
            ),
            max_clock_skew_s=fields.int("max_clock_skew_s", minimum=0),
        )
        fields.done()
        return policy


# --- Checking responses and proofs -------------------------------------------------------------


def _check_signed_by(envelope: Envelope, key: PublicKey, what: str) -> None:
    if envelope.verified_by({key.keyid: key}):
        return
    keyids = sorted({signature.keyid for signature in envelope.signatures})
    if key.keyid in keyids:
        raise Rejected(
            Reason.BAD_SIGNATURE,
            f"{what}: the signature by key {key.keyid} is invalid",
            expected=f"a valid signature by {key.keyid}",
            actual="an invalid signature",
        )
    raise Rejected(
        Reason.UNKNOWN_SIGNER,
        f"{what}: not signed by the configured key {key.keyid}",
        expected=key.keyid,
        actual=", ".join(keyids) or "no signatures",
    )


def check_landmark_response(
    envelope: Envelope,
    *,
    landmark: Landmark,
    nonce: str,
    now: int,
    max_clock_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S,
) -> LandmarkResponse:
    """Verify a landmark's response to the challenge with ``nonce`` and return it.

    Steps:
      1. The envelope is signed by the landmark's configured key.
      2. The payload is a well-formed landmark response.
      3. It names this landmark.
      4. It names this nonce (a replayed response names an older nonce).
      5. Its time is within ``max_clock_skew_s`` of ``now``.
      6. Its declared processing time is within the landmark's configured bound.

    Raises:
        Rejected: any step fails, with the matching reason code.
    """
    what = f"response of landmark {landmark.id}"

    # Step 1: signature by the configured key.
    _check_signed_by(envelope, landmark.key, what)

    # Step 2: a well-formed statement.
    try:
        response = envelope.statement(LandmarkResponse, what=what)
    except InputError as exc:
        raise Rejected(Reason.MALFORMED, str(exc)) from None

    # Step 3: the landmark named in the response.
    if response.landmark != landmark.id:
        raise Rejected(
            Reason.UNKNOWN_SIGNER,
            f"{what} names landmark {response.landmark}",
            expected=landmark.id,
            actual=response.landmark,
        )

    # Step 4: nonce binding.
    if response.nonce != nonce:
        raise Rejected(
            Reason.STALE_NONCE,
            f"{what} answers another challenge (replayed or late response)",
            expected=nonce,
            actual=response.nonce,
        )

    # Step 5: freshness of the landmark's clock against the device's.
    if abs(response.time - now) > max_clock_skew_s:
        raise Rejected(
            Reason.EXPIRED,
            f"{what} was signed at tick {response.time}, more than {max_clock_skew_s} s from "
            f"the device time {now}",
            expected=f"{now - max_clock_skew_s}..{now + max_clock_skew_s}",
            actual=str(response.time),
        )

    # Step 6: bounded processing time.
    if response.processing_us > landmark.max_processing_us:
        raise Rejected(
            Reason.MALFORMED,
            f"{what} declares {response.processing_us} us of processing, above the configured "
            f"maximum of {landmark.max_processing_us} us",
            expected=f"<= {landmark.max_processing_us}",
            actual=str(response.processing_us),
        )
    return response


def make_location_proof(
    response_envelope: Envelope,
    *,
    landmark: Landmark,
    nonce: str,
    rtt_ns: int,
    now: int,
    signal_speed_m_per_s: int = SPEED_OF_LIGHT_M_PER_S,
    max_clock_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S,
) -> LocationProof:
    """Check a landmark's response and build the proof for a measured round trip.

    ``rtt_ns`` is the device's monotonic time from just before sending the challenge to just
    after receiving the response. It is rounded up to whole microseconds.

    Raises:
        Rejected: the response fails :func:`check_landmark_response`, or it declares more
            processing time than the whole round trip took.
        InputError: ``rtt_ns`` is negative.
    """
    response = check_landmark_response(
        response_envelope,
        landmark=landmark,
        nonce=nonce,
        now=now,
        max_clock_skew_s=max_clock_skew_s,
    )
    if rtt_ns < 0:
        raise InputError(f"rtt_ns {rtt_ns} is negative; pass a monotonic clock's difference")
    rtt_us = -(-rtt_ns // 1000)
    if response.processing_us > rtt_us:
        raise Rejected(
            Reason.MALFORMED,
            f"landmark {landmark.id} declares {response.processing_us} us of processing but the "
            f"round trip took {rtt_us} us",
            expected=f"<= {rtt_us}",
            actual=str(response.processing_us),
        )
    return LocationProof(
        landmark=landmark.id,
        nonce=nonce,
        rtt_us=rtt_us,
        processing_us=response.processing_us,
        signal_speed_m_per_s=signal_speed_m_per_s,
        distance_bound_m=distance_bound_m(rtt_us, response.processing_us, signal_speed_m_per_s),
        time=now,
        response=response_envelope,
    )


def verify_location_proof(
    envelope: Envelope,
    *,
    device_key: PublicKey,
    policy: LocationPolicy,
) -> LocationProof:
    """Verify a stored location proof, without judging its age.

    Steps:
      1. The proof is signed by the device key.
      2. The payload is a well-formed location proof (its bound matches its round trip).
      3. Its landmark is configured, and the embedded response passes
         :func:`check_landmark_response` for the proof's nonce and time.
      4. Its declared processing matches the embedded response.
      5. It assumed a signal at least as fast as the policy's signal speed.

    Raises:
        Rejected: any step fails.
    """
    # Step 1: the device's signature.
    _check_signed_by(envelope, device_key, "location proof")

    # Step 2: a well-formed proof.
    try:
        proof = envelope.statement(LocationProof, what="location proof")
    except InputError as exc:
        raise Rejected(Reason.MALFORMED, str(exc)) from None

    # Step 3: the landmark's own signed response.
    landmark = policy.landmarks.get(proof.landmark)
    if landmark is None:
        raise Rejected(
            Reason.UNKNOWN_SIGNER,
            f"location proof names landmark {proof.landmark}, which is not configured",
            expected=", ".join(sorted(policy.landmarks)) or "no landmarks",
            actual=proof.landmark,
        )
    response = check_landmark_response(
        proof.response,
        landmark=landmark,
        nonce=proof.nonce,
        now=proof.time,
        max_clock_skew_s=policy.max_clock_skew_s,
    )

    # Step 4: the processing time subtracted is the one the landmark declared.
    if response.processing_us != proof.processing_us:
        raise Rejected(
            Reason.MALFORMED,
            "location proof subtracts a processing time other than the landmark's",
            expected=str(response.processing_us),
            actual=str(proof.processing_us),
        )

    # Step 5: the signal speed assumption.
    if proof.signal_speed_m_per_s < policy.signal_speed_m_per_s:
        raise Rejected(
            Reason.LOCATION_UNVERIFIED,
            f"location proof assumes signals travel at {proof.signal_speed_m_per_s} m/s, slower "
            f"than the {policy.signal_speed_m_per_s} m/s the policy requires",
            expected=f">= {policy.signal_speed_m_per_s}",
            actual=str(proof.signal_speed_m_per_s),
        )
    return proof


# --- Spherical geometry --------------------------------------------------------------------------

_Vec = tuple[float, float, float]


def _unit(latitude: float, longitude: float) -> _Vec:
    cos_lat = math.cos(latitude)
    return (cos_lat * math.cos(longitude), cos_lat * math.sin(longitude), math.sin(latitude))


def _dot(u: _Vec, v: _Vec) -> float:
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _cross(u: _Vec, v: _Vec) -> _Vec:
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _norm(u: _Vec) -> float:
    return math.sqrt(_dot(u, u))


def _normalize(u: _Vec) -> _Vec:
    length = _norm(u)
    return (u[0] / length, u[1] / length, u[2] / length)


def _angle(u: _Vec, v: _Vec) -> float:
    """Angle between two unit vectors, accurate for small and large angles alike."""
    return math.atan2(_norm(_cross(u, v)), _dot(u, v))


def great_circle_distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Return the great-circle distance in metres on the spherical Earth model."""
    return _angle(_unit(*a.radians()), _unit(*b.radians())) * EARTH_MEAN_RADIUS_M


@dataclass(frozen=True)
class _Cap:
    """A spherical cap: every point within ``radius`` radians of the unit vector ``center``."""

    center: _Vec
    radius: float

    def contains_point(self, point: _Vec) -> bool:
        return _angle(self.center, point) <= self.radius

    def disjoint(self, other: _Cap) -> bool:
        return _angle(self.center, other.center) > self.radius + other.radius + _ANGLE_EPS


def _arc_distance(point: _Vec, start: _Vec, end: _Vec) -> float:
    """Angle from ``point`` to the minor great-circle arc from ``start`` to ``end``."""
    normal = _cross(start, end)
    length = _norm(normal)
    if length < 1e-15:
        return _angle(point, start)
    normal = (normal[0] / length, normal[1] / length, normal[2] / length)
    along = _dot(point, normal)
    foot = (point[0] - along * normal[0], point[1] - along * normal[1], point[2] - along * normal[2])
    if _norm(foot) > 1e-15 and (
        _dot(_cross(start, foot), normal) >= 0 and _dot(_cross(foot, end), normal) >= 0
    ):
        return math.asin(min(1.0, abs(along)))
    return min(_angle(point, start), _angle(point, end))


class _DiscShape:
    def __init__(self, disc: Disc) -> None:
        self.center = _unit(*disc.center.radians())
        self.radius = disc.radius_m / EARTH_MEAN_RADIUS_M

    def contains_cap(self, cap: _Cap) -> bool:
        return _angle(self.center, cap.center) + cap.radius + _ANGLE_EPS <= self.radius

    def contains_point(self, point: _Vec) -> bool:
        return _angle(self.center, point) + _ANGLE_EPS <= self.radius

    def excludes_point(self, point: _Vec) -> bool:
        return _angle(self.center, point) > self.radius + _ANGLE_EPS


def _segments_cross(
    p1: tuple[float, float], p2: tuple[float, float], q1: tuple[float, float], q2: tuple[float, float]
) -> bool:
    def orient(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return ((d1 > 0) != (d2 > 0) or d1 == 0 or d2 == 0) and ((d3 > 0) != (d4 > 0) or d3 == 0 or d4 == 0)


class _PolygonShape:
    """A polygon in the gnomonic projection around its vertex mean, where edges are straight."""

    def __init__(
        self, vertices: list[_Vec], axis: _Vec, planar: list[tuple[float, float]], basis: tuple[_Vec, _Vec]
    ) -> None:
        self.vertices = vertices
        self.axis = axis
        self.planar = planar
        self.basis = basis

    @classmethod
    def build(cls, polygon: Polygon) -> _PolygonShape:
        points = polygon.vertices
        if len(points) < 3:
            raise InputError(f"a polygon needs at least 3 vertices, got {len(points)}")
        vertices = [_unit(*point.radians()) for point in points]
        for index, vertex in enumerate(vertices):
            following = vertices[(index + 1) % len(vertices)]
            if _angle(vertex, following) < 1e-9:
                raise InputError(f"polygon vertices {index} and {(index + 1) % len(vertices)} coincide")

        total = (sum(v[0] for v in vertices), sum(v[1] for v in vertices), sum(v[2] for v in vertices))
        if _norm(total) < 1e-9:
            raise InputError("polygon vertices are spread around the globe; keep it within a hemisphere")
        axis = _normalize(total)
        for index, vertex in enumerate(vertices):
            if _dot(vertex, axis) < math.cos(math.radians(80)):
                raise InputError(
                    f"polygon vertex {index} is more than 80 degrees from the polygon's center; "
                    "split large regions into smaller polygons"
                )

        helper: _Vec = (1.0, 0.0, 0.0) if abs(axis[0]) < 0.9 else (0.0, 1.0, 0.0)
        first = _normalize(_cross(axis, helper))
        second = _cross(axis, first)
        shape = cls(vertices, axis, [], (first, second))
        shape.planar = [shape._project(vertex) for vertex in vertices]

        count = len(shape.planar)
        for i in range(count):
            for j in range(i + 1, count):
                if j == i + 1 or (i == 0 and j == count - 1):
                    continue
                if _segments_cross(
                    shape.planar[i],
                    shape.planar[(i + 1) % count],
                    shape.planar[j],
                    shape.planar[(j + 1) % count],
                ):
                    raise InputError(f"polygon edges {i} and {j} cross; give a simple polygon")
        return shape

    def _project(self, point: _Vec) -> tuple[float, float]:
        height = _dot(point, self.axis)
        return (_dot(point, self.basis[0]) / height, _dot(point, self.basis[1]) / height)

    def _inside_planar(self, point: _Vec) -> bool:
        if _dot(point, self.axis) <= 1e-12:
            return False
        x, y = self._project(point)
        inside = False
        count = len(self.planar)
        for index in range(count):
            x1, y1 = self.planar[index]
            x2, y2 = self.planar[(index + 1) % count]
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside

    def _boundary_distance(self, point: _Vec) -> float:
        count = len(self.vertices)
        return min(
            _arc_distance(point, self.vertices[index], self.vertices[(index + 1) % count])
            for index in range(count)
        )

    def contains_cap(self, cap: _Cap) -> bool:
        if cap.radius + _ANGLE_EPS >= math.pi / 2:
            return False
        return self._boundary_distance(cap.center) >= cap.radius + _ANGLE_EPS and self._inside_planar(
            cap.center
        )

    def contains_point(self, point: _Vec) -> bool:
        return self._boundary_distance(point) >= _ANGLE_EPS and self._inside_planar(point)

    def excludes_point(self, point: _Vec) -> bool:
        return self._boundary_distance(point) >= _ANGLE_EPS and not self._inside_planar(point)


def _shape(shape: Shape) -> _DiscShape | _PolygonShape:
    if isinstance(shape, Disc):
        return _DiscShape(shape)
    return shape._geometry


@dataclass(frozen=True)
class _Cell:
    """A latitude/longitude box in radians; longitudes may run past +-pi and wrap."""

    lat_low: float
    lat_high: float
    lon_low: float
    lon_high: float

    def cap(self) -> _Cap:
        """Return a cap that contains every point of the box.

        From the box center, walk along the meridian to the point's latitude (at most half the
        latitude span), then along that parallel (at most half the longitude span times the
        largest cosine of a latitude in the box). The great circle is never longer than this path.
        """
        lat_mid = (self.lat_low + self.lat_high) / 2
        lon_mid = (self.lon_low + self.lon_high) / 2
        if self.lat_low <= 0 <= self.lat_high:
            max_cos = 1.0
        else:
            max_cos = max(math.cos(self.lat_low), math.cos(self.lat_high))
        radius = (self.lat_high - self.lat_low) / 2 + (self.lon_high - self.lon_low) / 2 * max_cos
        return _Cap(_unit(lat_mid, lon_mid), min(math.pi, radius * (1 + 1e-12) + _ANGLE_EPS))

    def split(self) -> list[_Cell]:
        lat_mid = (self.lat_low + self.lat_high) / 2
        lon_mid = (self.lon_low + self.lon_high) / 2
        return [
            _Cell(self.lat_low, lat_mid, self.lon_low, lon_mid),
            _Cell(self.lat_low, lat_mid, lon_mid, self.lon_high),
            _Cell(lat_mid, self.lat_high, self.lon_low, lon_mid),
            _Cell(lat_mid, self.lat_high, lon_mid, self.lon_high),
        ]


def _bounding_cell(latitude: float, longitude: float, radius: float) -> _Cell:
    """Return a latitude/longitude box that contains the cap around the point."""
    radius += _ANGLE_EPS
    lat_low = max(-math.pi / 2, latitude - radius)
    lat_high = min(math.pi / 2, latitude + radius)
    if latitude + radius >= math.pi / 2 or latitude - radius <= -math.pi / 2:
        return _Cell(lat_low, lat_high, longitude - math.pi, longitude + math.pi)
    spread = math.asin(min(1.0, math.sin(radius) / math.cos(latitude))) + _ANGLE_EPS
    return _Cell(lat_low, lat_high, longitude - spread, longitude + spread)


@dataclass(frozen=True)
class FeasibleRegion:
    """The set of places consistent with a group of proofs: the intersection of their discs.

    ``discs`` hold physical distance bounds. The geometry widens each by
    :data:`EARTH_MODEL_FACTOR`, so the region covers every WGS-84 position the bounds allow.
    """

    discs: tuple[Disc, ...]
    cell_budget: int = DEFAULT_CELL_BUDGET

    def __post_init__(self) -> None:
        if not self.discs:
            raise InputError("a feasible region needs at least one disc")

    def _caps(self) -> list[tuple[_Cap, float, float]]:
        caps = []
        for disc in self.discs:
            latitude, longitude = disc.center.radians()
            radius = min(math.pi, disc.radius_m * EARTH_MODEL_FACTOR / EARTH_MEAN_RADIUS_M + _ANGLE_EPS)
            caps.append((_Cap(_unit(latitude, longitude), radius), latitude, longitude))
        caps.sort(key=lambda item: item[0].radius)
        return caps

    def _start(self) -> tuple[list[_Cap], _Cell]:
        caps = self._caps()
        smallest, latitude, longitude = caps[0]
        return [cap for cap, _, _ in caps], _bounding_cell(latitude, longitude, smallest.radius)

    def witness(self) -> GeoPoint | None:
        """Return a point inside every disc, or None if none was found within the budget."""
        caps, start = self._start()
        for cap in caps:
            if all(other.contains_point(cap.center) for other in caps):
                return _to_geopoint(cap.center)
        stack = [start]
        budget = self.cell_budget
        while stack and budget > 0:
            budget -= 1
            cell = stack.pop()
            cell_cap = cell.cap()
            if any(cap.disjoint(cell_cap) for cap in caps):
                continue
            if all(cap.contains_point(cell_cap.center) for cap in caps):
                return _to_geopoint(cell_cap.center)
            if cell_cap.radius > _MIN_CELL_RAD:
                stack.extend(cell.split())
        return None

    def is_empty(self) -> bool:
        """Return True unless a point inside every disc was found (an undecided search is empty)."""
        return self.witness() is None

    def contained_in(self, shape: Shape) -> bool:
        """Return True only if the region is non-empty and every point of it lies in ``shape``.

        The search splits a box around the smallest disc into ever smaller cells. A cell is done
        when it provably misses some disc or provably lies in the shape. The answer is False as
        soon as a cell center is feasible and outside the shape, when a cell falls below about
        one metre, or when the cell budget runs out.
        """
        target = _shape(shape)
        caps, start = self._start()
        if self.is_empty():
            return False
        if target.contains_cap(caps[0]):
            return True
        stack = [start]
        budget = self.cell_budget
        while stack:
            budget -= 1
            if budget < 0:
                logger.debug("containment search ran out of its %d cells", self.cell_budget)
                return False
            cell = stack.pop()
            cell_cap = cell.cap()
            if any(cap.disjoint(cell_cap) for cap in caps):
                continue
            if target.contains_cap(cell_cap):
                continue
            if target.excludes_point(cell_cap.center) and all(
                cap.contains_point(cell_cap.center) for cap in caps
            ):
                return False
            if cell_cap.radius <= _MIN_CELL_RAD:
                return False
            stack.extend(cell.split())
        return True

    def within(self, point: GeoPoint, radius_m: int) -> bool:
        """Return True only if every point of the region is within ``radius_m`` of ``point``."""
        return self.contained_in(Disc(point, radius_m))

    def to_dict(self) -> dict[str, Any]:
        return {"discs": [disc.to_dict()["disc"] for disc in self.discs]}


def _to_geopoint(point: _Vec) -> GeoPoint:
    latitude = math.degrees(math.asin(max(-1.0, min(1.0, point[2]))))
    longitude = math.degrees(math.atan2(point[1], point[0]))
    return GeoPoint.from_degrees(latitude, longitude)


# --- Decisions for rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class RejectedProof:
    """A stored proof that did not count, with its position in the input and the reason."""

    index: int
    reason: Reason
    message: str


@dataclass(frozen=True)
class LocationStatus:
    """What the stored proofs establish at one tick, and the facts rules can use.

    Attributes:
        verified: a fresh, valid, self-consistent set of proofs exists.
        region: the first configured region (in policy order) that provably contains the
            feasible region; empty if none does or if unverified.
        regions: every configured region that provably contains the feasible region.
        proof_age_s: age of the newest valid proof, or :data:`NO_PROOF_AGE_S` when none exists.
        reason: ``location-unverified``, ``outside-region`` (verified, but inside no configured
            region), or None.
        feasible: the feasible region at the time of the newest fresh proof, if verified.
        used: the fresh proofs that shaped the feasible region.
        rejected: the proofs that did not verify.
    """

    verified: bool
    region: str
    regions: tuple[str, ...]
    proof_age_s: int
    reason: Reason | None
    message: str
    feasible: FeasibleRegion | None = None
    used: tuple[LocationProof, ...] = ()
    rejected: tuple[RejectedProof, ...] = ()

    def facts(self) -> dict[str, bool | str | int]:
        """Return the facts rules read: ``location.verified``, ``.region`` and ``.proof_age_s``."""
        return {
            "location.verified": self.verified,
            "location.region": self.region,
            "location.proof_age_s": self.proof_age_s,
        }

    def require_region(self, name: str) -> None:
        """Raise unless the device is verified to be inside the region ``name``.

        Raises:
            Rejected: ``location-unverified`` without a fresh proof, ``outside-region`` when the
                feasible region is not provably inside ``name``.
        """
        if not self.verified:
            raise Rejected(Reason.LOCATION_UNVERIFIED, self.message)
        if name not in self.regions:
            raise Rejected(
                Reason.OUTSIDE_REGION,
                f"the device is not provably inside region {name}",
                expected=name,
                actual=", ".join(self.regions) or "no configured region",
            )


def decide_location(
    proofs: Iterable[Envelope],
    *,
    device_key: PublicKey,
    policy: LocationPolicy,
    now: int,
) -> LocationStatus:
    """Decide what the stored proofs establish at tick ``now``.

    Steps:
      1. Verify every proof (:func:`verify_location_proof`); invalid ones do not count.
      2. Drop proofs from the future (a clock set back) and proofs older than the policy's
         maximum age. Without a fresh proof the location is unverified.
      3. Widen each fresh proof by the distance the device could have travelled between it and
         the newest fresh proof, and intersect the discs.
      4. An empty intersection means contradicting proofs: unverified.
      5. List the configured regions that provably contain the intersection.
    """
    # Step 1: verify each proof.
    past: list[LocationProof] = []
    rejected: list[RejectedProof] = []
    for index, envelope in enumerate(proofs):
        try:
            proof = verify_location_proof(envelope, device_key=device_key, policy=policy)
        except Rejected as exc:
            logger.debug("location proof %d does not count: %s", index, exc)
            rejected.append(RejectedProof(index, exc.reason, exc.message))
            continue

        # Step 2: a proof dated after now means the clock was set back; it does not count.
        if proof.time > now:
            rejected.append(
                RejectedProof(index, Reason.EXPIRED, f"proof dated {proof.time}, after now ({now})")
            )
            continue
        past.append(proof)

    newest = max((proof.time for proof in past), default=None)
    age = NO_PROOF_AGE_S if newest is None else now - newest
    fresh = [proof for proof in past if now - proof.time <= policy.max_proof_age_s]
    if not fresh:
        message = (
            "no valid location proof"
            if newest is None
            else f"the newest location proof is {age} s old, above the limit of {policy.max_proof_age_s} s"
        )
        return LocationStatus(
            False, "", (), age, Reason.LOCATION_UNVERIFIED, message, rejected=tuple(rejected)
        )

    # Step 3: discs at the time of the newest fresh proof.
    reference = max(proof.time for proof in fresh)
    discs = tuple(
        Disc(
            policy.landmarks[proof.landmark].position,
            proof.distance_bound_m + policy.max_travel_speed_m_per_s * (reference - proof.time),
        )
        for proof in fresh
    )
    feasible = FeasibleRegion(discs)

    # Step 4: consistency.
    if feasible.is_empty():
        return LocationStatus(
            False,
            "",
            (),
            age,
            Reason.LOCATION_UNVERIFIED,
            "the fresh location proofs contradict each other: their discs do not intersect",
            feasible=feasible,
            used=tuple(fresh),
            rejected=tuple(rejected),
        )

    # Step 5: regions.
    regions = tuple(region.name for region in policy.regions if feasible.contained_in(region.shape))
    region = regions[0] if regions else ""
    if region or not policy.regions:
        reason, message = None, "location verified"
    else:
        reason = Reason.OUTSIDE_REGION
        message = "the device is not provably inside any configured region"
    return LocationStatus(
        True,
        region,
        regions,
        age,
        reason,
        message,
        feasible=feasible,
        used=tuple(fresh),
        rejected=tuple(rejected),
    )


def within_distance(status: LocationStatus, landmark: Landmark, radius_m: int) -> bool:
    """Return True only if the verified feasible region lies within ``radius_m`` of ``landmark``."""
    if not status.verified or status.feasible is None:
        return False
    return status.feasible.within(landmark.position, radius_m)
