"""Pure location checks: statements, response checks, proofs, geometry and region decisions."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from dataclasses import replace
from functools import cache

import pytest
from geographiclib.geodesic import Geodesic
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flexheg.device.location import (
    EARTH_MEAN_RADIUS_M,
    EARTH_MODEL_FACTOR,
    NO_PROOF_AGE_S,
    SPEED_OF_LIGHT_M_PER_S,
    Disc,
    FeasibleRegion,
    GeoPoint,
    Landmark,
    LandmarkResponse,
    LocationChallenge,
    LocationPolicy,
    LocationProof,
    LocationStatus,
    Polygon,
    Region,
    check_landmark_response,
    decide_location,
    distance_bound_m,
    great_circle_distance_m,
    make_location_proof,
    verify_location_proof,
    within_distance,
)
from flexheg.errors import InputError, Reason, Rejected
from flexheg.wire import Envelope, SigningKey, decode, encode, parse_statement

NOW = 1_800_000_000
NONCE = "ab" * 32
OTHER_NONCE = "cd" * 32


@cache
def _key(name: str) -> SigningKey:
    return SigningKey.generate()


def _landmark(name: str = "geneva-1", lat: float = 46.2, lon: float = 6.14) -> Landmark:
    return Landmark(name, _key(name).public, GeoPoint.from_degrees(lat, lon), 5000)


def _response(
    landmark: Landmark,
    *,
    nonce: str = NONCE,
    time: int = NOW,
    processing_us: int = 1000,
    key: SigningKey | None = None,
    name: str | None = None,
) -> Envelope:
    statement = LandmarkResponse(name or landmark.id, nonce, time, processing_us)
    return Envelope.sign(statement, key or _key(landmark.id))


def _proof(
    landmark: Landmark, rtt_us: int, *, time: int = NOW, device: str = "device", nonce: str = NONCE
) -> Envelope:
    response = _response(landmark, nonce=nonce, time=time)
    proof = make_location_proof(response, landmark=landmark, nonce=nonce, rtt_ns=rtt_us * 1000, now=time)
    return Envelope.sign(proof, _key(device))


def _rtt_for(distance_m: int, processing_us: int = 1000) -> int:
    return math.ceil(2 * distance_m * 1_000_000 / SPEED_OF_LIGHT_M_PER_S) + processing_us


GENEVA = _landmark("geneva-1", 46.2, 6.14)
BERLIN = _landmark("berlin-1", 52.52, 13.40)
MADRID = _landmark("madrid-1", 40.42, -3.70)
EUROPE = Region(
    "europe",
    Polygon(
        tuple(
            GeoPoint.from_degrees(lat, lon)
            for lat, lon in [(36.0, -10.0), (36.0, 30.0), (60.0, 30.0), (60.0, -10.0)]
        )
    ),
)
NEAR_GENEVA = Region("near-geneva", Disc(GENEVA.position, 300_000))


def _policy(**changes: object) -> LocationPolicy:
    policy = LocationPolicy(
        landmarks={lm.id: lm for lm in (GENEVA, BERLIN, MADRID)},
        regions=(NEAR_GENEVA, EUROPE),
        max_proof_age_s=3600,
    )
    return replace(policy, **changes)  # type: ignore[arg-type]


# --- Statements --------------------------------------------------------------------------------

names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
nonces = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
ticks = st.integers(min_value=0, max_value=2**40)


@given(names, nonces)
def test_challenge_round_trip(name: str, nonce: str) -> None:
    challenge = LocationChallenge(name, nonce)
    assert parse_statement(challenge.encode(), LocationChallenge, what="c") == challenge


@given(names, nonces, ticks, st.integers(min_value=0, max_value=10_000_000))
def test_response_round_trip(name: str, nonce: str, time: int, processing: int) -> None:
    response = LandmarkResponse(name, nonce, time, processing)
    assert parse_statement(response.encode(), LandmarkResponse, what="r") == response


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=5000),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=1, max_value=SPEED_OF_LIGHT_M_PER_S * 2),
)
def test_proof_round_trip(processing: int, flight_us: int, speed: int) -> None:
    rtt = processing + flight_us
    proof = LocationProof(
        "geneva-1",
        NONCE,
        rtt,
        processing,
        speed,
        distance_bound_m(rtt, processing, speed),
        NOW,
        _response(GENEVA),
    )
    assert parse_statement(proof.encode(), LocationProof, what="p") == proof


def test_proof_with_edited_bound_rejected() -> None:
    proof = _proof(GENEVA, 3000).statement(LocationProof, what="p")
    document = proof.to_dict()
    document["distance_bound_m"] -= 1
    with pytest.raises(InputError, match="does not match the round trip"):
        parse_statement(encode(document), LocationProof, what="p")


@given(st.sampled_from(["extra", "port", "z"]))
def test_challenge_unknown_field_rejected(field: str) -> None:
    document = LocationChallenge("geneva-1", NONCE).to_dict()
    document[field] = 1
    with pytest.raises(InputError, match="unknown field"):
        parse_statement(encode(document), LocationChallenge, what="c")


@pytest.mark.parametrize("nonce", ["", "AB" * 32, "ab" * 31, "zz" * 32, "ab" * 33])
def test_challenge_bad_nonce_rejected(nonce: str) -> None:
    document = {"type": LocationChallenge.TYPE, "landmark": "geneva-1", "nonce": nonce}
    with pytest.raises(InputError, match="nonce"):
        parse_statement(encode(document), LocationChallenge, what="c")


def test_response_float_rejected() -> None:
    data = (
        b'{"landmark":"geneva-1","nonce":"'
        + NONCE.encode()
        + b'","processing_us":1.5,"time":1,"type":"flexheg.dev/landmark-response/v1"}'
    )
    with pytest.raises(InputError):
        parse_statement(data, LandmarkResponse, what="r")


# --- Distance bounds ---------------------------------------------------------------------------


@given(
    st.integers(min_value=0, max_value=10**8),
    st.integers(min_value=0, max_value=10_000_000),
    st.integers(min_value=1, max_value=SPEED_OF_LIGHT_M_PER_S),
)
def test_bound_never_below_flight(flight_us: int, processing: int, speed: int) -> None:
    bound = distance_bound_m(flight_us + processing, processing, speed)
    assert bound * 2_000_000 >= speed * flight_us
    assert (bound - 1) * 2_000_000 < speed * flight_us


def test_bound_of_one_millisecond() -> None:
    assert distance_bound_m(1000, 0, 200_000_000) == 100_000
    assert distance_bound_m(1000, 0, SPEED_OF_LIGHT_M_PER_S) == 149_897


def test_bound_processing_above_rtt_rejected() -> None:
    with pytest.raises(InputError, match="exceeds the round trip"):
        distance_bound_m(100, 101, SPEED_OF_LIGHT_M_PER_S)


# --- Landmark responses ------------------------------------------------------------------------


def test_response_valid_accepted() -> None:
    response = check_landmark_response(_response(GENEVA), landmark=GENEVA, nonce=NONCE, now=NOW)
    assert response.nonce == NONCE


def test_response_replayed_nonce_rejected() -> None:
    with pytest.raises(Rejected) as caught:
        check_landmark_response(_response(GENEVA), landmark=GENEVA, nonce=OTHER_NONCE, now=NOW)
    assert caught.value.reason is Reason.STALE_NONCE


def test_response_forged_key_rejected() -> None:
    forged = _response(GENEVA, key=SigningKey.generate())
    with pytest.raises(Rejected) as caught:
        check_landmark_response(forged, landmark=GENEVA, nonce=NONCE, now=NOW)
    assert caught.value.reason is Reason.UNKNOWN_SIGNER


def test_response_bad_signature_rejected() -> None:
    good = _response(GENEVA)
    signature = good.signatures[0]
    broken = replace(good, signatures=(replace(signature, sig=bytes(64)),))
    with pytest.raises(Rejected) as caught:
        check_landmark_response(broken, landmark=GENEVA, nonce=NONCE, now=NOW)
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_response_other_landmark_rejected() -> None:
    renamed = _response(GENEVA, name="berlin-1")
    with pytest.raises(Rejected) as caught:
        check_landmark_response(renamed, landmark=GENEVA, nonce=NONCE, now=NOW)
    assert caught.value.reason is Reason.UNKNOWN_SIGNER


@pytest.mark.parametrize("offset", [-31, 31, -10_000])
def test_response_outside_skew_rejected(offset: int) -> None:
    with pytest.raises(Rejected) as caught:
        check_landmark_response(_response(GENEVA, time=NOW + offset), landmark=GENEVA, nonce=NONCE, now=NOW)
    assert caught.value.reason is Reason.EXPIRED


def test_response_excess_processing_rejected() -> None:
    with pytest.raises(Rejected) as caught:
        check_landmark_response(_response(GENEVA, processing_us=5001), landmark=GENEVA, nonce=NONCE, now=NOW)
    assert caught.value.reason is Reason.MALFORMED


def test_proof_processing_above_rtt_rejected() -> None:
    with pytest.raises(Rejected) as caught:
        make_location_proof(
            _response(GENEVA, processing_us=1000),
            landmark=GENEVA,
            nonce=NONCE,
            rtt_ns=999_000,
            now=NOW,
        )
    assert caught.value.reason is Reason.MALFORMED


def test_proof_rounds_rtt_up() -> None:
    proof = make_location_proof(_response(GENEVA), landmark=GENEVA, nonce=NONCE, rtt_ns=1_000_001, now=NOW)
    assert proof.rtt_us == 1001


# --- Stored proofs -----------------------------------------------------------------------------


def test_verify_proof_valid() -> None:
    proof = verify_location_proof(_proof(GENEVA, 2000), device_key=_key("device").public, policy=_policy())
    assert proof.distance_bound_m == distance_bound_m(2000, 1000, SPEED_OF_LIGHT_M_PER_S)


def test_verify_proof_other_device_rejected() -> None:
    with pytest.raises(Rejected) as caught:
        verify_location_proof(
            _proof(GENEVA, 2000, device="other"),
            device_key=_key("device").public,
            policy=_policy(),
        )
    assert caught.value.reason is Reason.UNKNOWN_SIGNER


def test_verify_proof_unknown_landmark_rejected() -> None:
    policy = _policy(landmarks={"berlin-1": BERLIN})
    with pytest.raises(Rejected) as caught:
        verify_location_proof(_proof(GENEVA, 2000), device_key=_key("device").public, policy=policy)
    assert caught.value.reason is Reason.UNKNOWN_SIGNER


def test_verify_proof_slow_signal_rejected() -> None:
    response = _response(GENEVA)
    proof = make_location_proof(
        response,
        landmark=GENEVA,
        nonce=NONCE,
        rtt_ns=3_000_000,
        now=NOW,
        signal_speed_m_per_s=200_000_000,
    )
    with pytest.raises(Rejected) as caught:
        verify_location_proof(
            Envelope.sign(proof, _key("device")),
            device_key=_key("device").public,
            policy=_policy(),
        )
    assert caught.value.reason is Reason.LOCATION_UNVERIFIED


def test_verify_proof_swapped_response_rejected() -> None:
    """A device cannot pair its nonce with a response the landmark gave to another challenge."""
    proof = make_location_proof(_response(GENEVA), landmark=GENEVA, nonce=NONCE, rtt_ns=3_000_000, now=NOW)
    other = _response(GENEVA, nonce=OTHER_NONCE)
    tampered = replace(proof, response=other)
    with pytest.raises(Rejected) as caught:
        verify_location_proof(
            Envelope.sign(tampered, _key("device")),
            device_key=_key("device").public,
            policy=_policy(),
        )
    assert caught.value.reason is Reason.STALE_NONCE


def test_policy_round_trip() -> None:
    policy = _policy()
    assert LocationPolicy.from_dict(decode(encode(policy.to_dict()), what="p"), where="p") == policy


def test_policy_unknown_field_rejected() -> None:
    document = _policy().to_dict()
    document["regions"][0]["colour"] = "red"
    with pytest.raises(InputError, match="unknown field"):
        LocationPolicy.from_dict(document, where="p")


def test_policy_region_needs_one_shape() -> None:
    document = _policy().to_dict()
    document["regions"][1]["disc"] = document["regions"][0]["disc"]
    with pytest.raises(InputError, match="exactly one"):
        LocationPolicy.from_dict(document, where="p")


def test_polygon_self_crossing_rejected() -> None:
    bowtie = [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)]
    with pytest.raises(InputError, match="cross"):
        Polygon(tuple(GeoPoint.from_degrees(lat, lon) for lat, lon in bowtie))


def test_polygon_beyond_hemisphere_rejected() -> None:
    wide = [(0.0, -100.0), (0.0, 0.0), (0.0, 100.0), (10.0, 0.0)]
    with pytest.raises(InputError, match="degrees"):
        Polygon(tuple(GeoPoint.from_degrees(lat, lon) for lat, lon in wide))


# --- Geometry ----------------------------------------------------------------------------------


@settings(max_examples=300)
@given(
    st.floats(min_value=-89.9, max_value=89.9),
    st.floats(min_value=-180, max_value=180),
    st.floats(min_value=-89.9, max_value=89.9),
    st.floats(min_value=-180, max_value=180),
)
def test_sphere_never_shorter_than_wgs84(lat1: float, lon1: float, lat2: float, lon2: float) -> None:
    """The spherical distance never exceeds EARTH_MODEL_FACTOR times the WGS-84 geodesic."""
    a, b = GeoPoint.from_degrees(lat1, lon1), GeoPoint.from_degrees(lat2, lon2)
    geodesic = Geodesic.WGS84.Inverse(
        a.latitude_microdeg / 1e6,
        a.longitude_microdeg / 1e6,
        b.latitude_microdeg / 1e6,
        b.longitude_microdeg / 1e6,
    )["s12"]
    assert great_circle_distance_m(a, b) <= geodesic * EARTH_MODEL_FACTOR + 1e-6


def _destination(center: GeoPoint, bearing: float, distance_m: float) -> tuple[float, float, float]:
    """Return the unit vector reached from ``center`` along ``bearing`` (radians) on the sphere."""
    lat, lon = center.radians()
    angle = distance_m / EARTH_MEAN_RADIUS_M
    lat2 = math.asin(math.sin(lat) * math.cos(angle) + math.cos(lat) * math.sin(angle) * math.cos(bearing))
    lon2 = lon + math.atan2(
        math.sin(bearing) * math.sin(angle) * math.cos(lat),
        math.cos(angle) - math.sin(lat) * math.sin(lat2),
    )
    return (math.cos(lat2) * math.cos(lon2), math.cos(lat2) * math.sin(lon2), math.sin(lat2))


def _vec(point: GeoPoint) -> tuple[float, float, float]:
    lat, lon = point.radians()
    return (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat))


def _angle(u: tuple[float, float, float], v: tuple[float, float, float]) -> float:
    dot = sum(x * y for x, y in zip(u, v, strict=True))
    return math.acos(max(-1.0, min(1.0, dot)))


def _winding(point: tuple[float, float, float], polygon: Polygon) -> float:
    """Sum of signed angles that the polygon's edges subtend at ``point``: about 2*pi inside."""
    vertices = [_vec(vertex) for vertex in polygon.vertices]
    total = 0.0
    for index, a in enumerate(vertices):
        b = vertices[(index + 1) % len(vertices)]
        cross = (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
        sine = sum(x * y for x, y in zip(cross, point, strict=True))
        ab = sum(x * y for x, y in zip(a, b, strict=True))
        ap = sum(x * y for x, y in zip(a, point, strict=True))
        bp = sum(x * y for x, y in zip(b, point, strict=True))
        total += math.atan2(sine, ab - ap * bp)
    return abs(total)


def _inside_independent(point: tuple[float, float, float], shape: Disc | Polygon) -> bool:
    if isinstance(shape, Disc):
        return _angle(point, _vec(shape.center)) * EARTH_MEAN_RADIUS_M <= shape.radius_m + 0.01
    return _winding(point, shape) > math.pi


points = st.builds(
    GeoPoint.from_degrees, st.floats(min_value=-70, max_value=70), st.floats(min_value=-180, max_value=180)
)


@st.composite
def feasible_cases(draw: st.DrawFn) -> tuple[FeasibleRegion, Disc | Polygon]:
    """Discs around one true position, and a region near it (a disc or a star-shaped polygon)."""
    truth = draw(points)
    discs = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        bearing = draw(st.floats(min_value=0, max_value=2 * math.pi))
        offset = draw(st.integers(min_value=0, max_value=800_000))
        landmark = _to_point(_destination(truth, bearing, offset))
        slack = draw(st.integers(min_value=1000, max_value=600_000))
        discs.append(Disc(landmark, offset + slack))

    shape_center = _to_point(
        _destination(truth, draw(st.floats(0, 2 * math.pi)), draw(st.integers(0, 600_000)))
    )
    if draw(st.booleans()):
        return FeasibleRegion(tuple(discs), cell_budget=3000), Disc(
            shape_center, draw(st.integers(100_000, 2_000_000))
        )
    count = draw(st.integers(min_value=3, max_value=9))
    bearings = sorted(draw(st.lists(st.floats(0, 2 * math.pi), min_size=count, max_size=count, unique=True)))
    assume(all(b - a > 0.05 for a, b in itertools.pairwise(bearings)))
    assume(bearings[0] + 2 * math.pi - bearings[-1] > 0.05)
    vertices = tuple(
        _to_point(_destination(shape_center, bearing, draw(st.integers(200_000, 2_000_000))))
        for bearing in bearings
    )
    try:
        polygon = Polygon(vertices)
    except InputError:
        assume(False)
        raise
    return FeasibleRegion(tuple(discs), cell_budget=3000), polygon


def _to_point(vector: tuple[float, float, float]) -> GeoPoint:
    return GeoPoint.from_degrees(
        math.degrees(math.asin(max(-1.0, min(1.0, vector[2])))),
        math.degrees(math.atan2(vector[1], vector[0])),
    )


def _feasible_samples(region: FeasibleRegion, count: int) -> list[tuple[float, float, float]]:
    """Points of the region: a polar grid over the smallest (widened) disc, kept if in every disc."""
    widened = [
        (_vec(disc.center), disc.radius_m * EARTH_MODEL_FACTOR / EARTH_MEAN_RADIUS_M) for disc in region.discs
    ]
    smallest = min(region.discs, key=lambda disc: disc.radius_m)
    found = []
    for ring in range(count + 1):
        distance = smallest.radius_m * EARTH_MODEL_FACTOR * ring / count
        for step in range(4 * ring + 1):
            point = _destination(smallest.center, 2 * math.pi * step / (4 * ring + 1), distance)
            if all(_angle(point, center) <= radius for center, radius in widened):
                found.append(point)
    return found


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(feasible_cases())
def test_containment_is_sound(case: tuple[FeasibleRegion, Disc | Polygon]) -> None:
    region, shape = case
    if not region.contained_in(shape):
        return
    samples = _feasible_samples(region, 24)
    outside = [point for point in samples if not _inside_independent(point, shape)]
    assert not outside


def test_containment_small_disc_inside() -> None:
    region = FeasibleRegion((Disc(GENEVA.position, 50_000),))
    assert region.contained_in(EUROPE.shape)
    assert region.contained_in(NEAR_GENEVA.shape)


def test_containment_straddling_disc_not_inside() -> None:
    region = FeasibleRegion((Disc(GENEVA.position, 400_000),))
    assert not region.contained_in(NEAR_GENEVA.shape)


def test_containment_uses_intersection() -> None:
    """Two wide discs whose lens lies near Geneva prove more than either disc alone."""
    west = GeoPoint.from_degrees(46.2, -2.0)
    east = GeoPoint.from_degrees(46.2, 14.3)
    distance = great_circle_distance_m(west, GENEVA.position)
    discs = (Disc(west, round(distance) + 100_000), Disc(east, round(distance) + 100_000))
    region = FeasibleRegion(discs)
    assert not FeasibleRegion(discs[:1]).contained_in(EUROPE.shape)
    assert region.contained_in(EUROPE.shape)


def test_containment_empty_region_never_inside() -> None:
    far_apart = (Disc(GENEVA.position, 100_000), Disc(MADRID.position, 100_000))
    region = FeasibleRegion(far_apart)
    assert region.is_empty()
    assert not region.contained_in(EUROPE.shape)


def test_containment_across_antimeridian() -> None:
    fiji = GeoPoint.from_degrees(-17.0, 179.9)
    region = FeasibleRegion((Disc(fiji, 50_000),))
    box = Polygon(
        tuple(
            GeoPoint.from_degrees(lat, lon)
            for lat, lon in [(-20.0, 178.0), (-20.0, -178.0), (-14.0, -178.0), (-14.0, 178.0)]
        )
    )
    assert region.contained_in(box)


def test_containment_around_pole() -> None:
    pole = GeoPoint.from_degrees(89.9, 0.0)
    region = FeasibleRegion((Disc(pole, 100_000),))
    assert region.contained_in(Disc(GeoPoint.from_degrees(90.0, 0.0), 200_000))
    assert not region.contained_in(Disc(GeoPoint.from_degrees(90.0, 0.0), 100_000))


# --- Decisions ---------------------------------------------------------------------------------


def _decide(proofs: list[Envelope], *, now: int = NOW, **policy: object) -> LocationStatus:
    return decide_location(proofs, device_key=_key("device").public, policy=_policy(**policy), now=now)


def test_decide_no_proof_unverified() -> None:
    status = _decide([])
    assert status.facts() == {
        "location.verified": False,
        "location.region": "",
        "location.proof_age_s": NO_PROOF_AGE_S,
    }
    assert status.reason is Reason.LOCATION_UNVERIFIED


def test_decide_near_landmark_inside() -> None:
    status = _decide([_proof(GENEVA, _rtt_for(100_000))], now=NOW + 60)
    assert status.facts() == {
        "location.verified": True,
        "location.region": "near-geneva",
        "location.proof_age_s": 60,
    }
    assert status.regions == ("near-geneva", "europe")
    assert status.reason is None


def test_decide_stale_proof_unverified() -> None:
    status = _decide([_proof(GENEVA, _rtt_for(100_000))], now=NOW + 3601)
    assert not status.verified
    assert status.proof_age_s == 3601
    assert status.reason is Reason.LOCATION_UNVERIFIED


def test_decide_far_bound_outside_region() -> None:
    status = _decide([_proof(GENEVA, _rtt_for(5_000_000))])
    assert status.verified
    assert status.region == ""
    assert status.reason is Reason.OUTSIDE_REGION
    with pytest.raises(Rejected) as caught:
        status.require_region("europe")
    assert caught.value.reason is Reason.OUTSIDE_REGION


def test_decide_three_landmarks_inside_europe() -> None:
    """Each bound alone reaches outside Europe; together they pin the device near Geneva."""
    proofs = [
        _proof(GENEVA, _rtt_for(1_500_000)),
        _proof(BERLIN, _rtt_for(1_200_000)),
        _proof(MADRID, _rtt_for(1_300_000)),
    ]
    for proof in proofs:
        assert _decide([proof]).region == ""
    status = _decide(proofs)
    assert status.region == "europe"
    assert within_distance(status, GENEVA, 1_520_000)
    assert not within_distance(status, GENEVA, 100_000)


def test_decide_future_proof_ignored() -> None:
    status = _decide([_proof(GENEVA, _rtt_for(100_000), time=NOW + 10)])
    assert not status.verified
    assert status.rejected[0].reason is Reason.EXPIRED


def test_decide_forged_proof_ignored() -> None:
    status = _decide([_proof(GENEVA, _rtt_for(100_000), device="intruder")])
    assert not status.verified
    assert status.rejected[0].reason is Reason.UNKNOWN_SIGNER


def test_decide_contradicting_proofs_unverified() -> None:
    proofs = [_proof(GENEVA, _rtt_for(50_000)), _proof(MADRID, _rtt_for(50_000))]
    status = _decide(proofs)
    assert not status.verified
    assert "contradict" in status.message


def test_decide_older_proof_widened_by_travel() -> None:
    """An hour-old tight proof from Madrid no longer constrains a device that may have moved."""
    old_madrid = _proof(MADRID, _rtt_for(50_000), time=NOW - 3000)
    new_geneva = _proof(GENEVA, _rtt_for(100_000), time=NOW)
    status = _decide([old_madrid, new_geneva], max_travel_speed_m_per_s=300)
    assert status.verified
    assert status.region == "near-geneva"
    frozen = _decide([old_madrid, new_geneva], max_travel_speed_m_per_s=0)
    assert not frozen.verified


def test_require_region_unverified() -> None:
    with pytest.raises(Rejected) as caught:
        _decide([]).require_region("europe")
    assert caught.value.reason is Reason.LOCATION_UNVERIFIED


# --- Layering and configuration codecs ---------------------------------------------------------


def test_device_location_imports_no_sockets() -> None:
    """The pure part must not pull in the socket layer that sits above the device."""
    code = (
        "import sys, flexheg.device.location; "
        "print(sorted(m for m in sys.modules if m.startswith('flexheg.location') or m == 'socket'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "flexheg.location" not in result.stdout


microdegree_latitudes = st.integers(min_value=-89_000_000, max_value=89_000_000)
microdegree_longitudes = st.integers(min_value=-180_000_000, max_value=180_000_000)


@given(
    st.lists(
        st.tuples(names, microdegree_latitudes, microdegree_longitudes, st.integers(0, 2**40)),
        max_size=4,
        unique_by=lambda item: item[0],
    )
)
def test_disc_regions_round_trip(items: list[tuple[str, int, int, int]]) -> None:
    regions = tuple(Region(name, Disc(GeoPoint(lat, lon), radius)) for name, lat, lon, radius in items)
    policy = _policy(regions=regions)
    parsed = LocationPolicy.from_dict(decode(encode(policy.to_dict()), what="p"), where="p")
    assert parsed == policy


@given(
    st.integers(min_value=-60_000_000, max_value=60_000_000),
    st.integers(min_value=-170_000_000, max_value=170_000_000),
    st.integers(min_value=100_000, max_value=5_000_000),
)
def test_polygon_region_round_trip(lat: int, lon: int, size: int) -> None:
    corners = ((0, 0), (0, size), (size, size), (size, 0))
    polygon = Polygon(tuple(GeoPoint(lat + dlat, lon + dlon) for dlat, dlon in corners))
    region = Region("box", polygon)
    assert Region.from_dict(decode(encode(region.to_dict()), what="r"), where="r") == region
