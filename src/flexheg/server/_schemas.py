"""Request and response bodies of the HTTP API (pydantic models, exported into OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_TICK = 2**53 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"\S"),
                 AfterValidator(_no_nul)]
Text = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_no_nul)]
Tick = Annotated[int, Field(ge=0, le=MAX_TICK)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
Seed = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"\S"),
                 AfterValidator(_no_nul)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """An error: ``detail`` is a message, or for a rejection the reason code and message."""

    detail: str | dict[str, str]


class PublicKeyBody(Strict):
    keyid: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    keytype: Annotated[str, StringConstraints(max_length=32)]
    scheme: Annotated[str, StringConstraints(max_length=32)]
    keyval: dict[str, Annotated[str, StringConstraints(max_length=256)]]


class EnvelopeBody(Strict):
    """A DSSE envelope: base64 payload, payload type and signatures."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    payload: Annotated[str, StringConstraints(max_length=1_000_000)]
    payloadType: Annotated[str, StringConstraints(max_length=256)]  # noqa: N815 - DSSE field name
    signatures: Annotated[list[dict[str, Annotated[str, StringConstraints(max_length=4096)]]],
                          Field(max_length=16)]


class EntityCreate(Strict):
    id: Id
    kind: Annotated[str, StringConstraints(pattern=r"^(device|chip|data-center|fab|equipment)$")]
    owner: Name
    latitude: Latitude
    longitude: Longitude
    region: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"\S"),
                      AfterValidator(_no_nul)]
    risk_weight: Annotated[int, Field(ge=1, le=100)] = 1
    site_id: Id | None = None
    description: Text = ""
    identity_key: PublicKeyBody | None = None
    manufacturer: Name | None = None
    certificate: EnvelopeBody | None = None


class EntityUpdate(Strict):
    owner: Name | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    region: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"\S"),
                      AfterValidator(_no_nul)] | None = None
    status: Annotated[str, StringConstraints(pattern=r"^(active|missing|discarded|closed)$")] | None = None
    risk_weight: Annotated[int, Field(ge=1, le=100)] | None = None
    site_id: Id | None = None
    description: Text | None = None
    reason: Text = Field(description="Why the entity changes; stored in its history.")


class EntityOut(BaseModel):
    id: str
    kind: str
    owner: str
    latitude: float
    longitude: float
    region: str
    status: str
    risk_weight: int
    site_id: str | None
    description: str
    created_at: int
    updated_at: int
    version: int
    identity_key: dict[str, Any] | None = None
    manufacturer: str | None = None
    certificate: dict[str, Any] | None = None
    last_attested_at: int | None = None
    attestation_count: int | None = None
    away_since: int | None = None
    custody_problem: str | None = None


class ChangeOut(BaseModel):
    id: int
    action: str
    old: dict[str, Any]
    new: dict[str, Any]
    actor: str
    reason: str
    at: int


class CensusResult(BaseModel):
    import_id: int
    source: str
    rows: int
    digest: str


class AttestationCreate(Strict):
    tick: Tick


class LocationCreate(Strict):
    latitude: Latitude
    longitude: Longitude
    source: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"\S"),
                      AfterValidator(_no_nul)]


class LocationOut(BaseModel):
    device_id: str
    latitude: float
    longitude: float
    source: str
    distance_km: float
    contradicts_registration: bool
    at: int


class RoundCreate(Strict):
    seed: Seed
    sample_size: Annotated[int, Field(ge=1, le=1_000_000)]


class InspectionOut(BaseModel):
    id: int
    round_id: int | None
    entity_id: str
    stratum: str
    state: str
    seen: bool | None
    seals_intact: bool | None
    power_log_checked: bool | None
    power_log_head: str | None
    power_log_count: int | None
    problems: list[str]
    notes: str
    inspector: str | None
    recorded_at: int | None


class RoundOut(BaseModel):
    id: int
    seed: str
    algorithm: str
    sample_size: int
    population: int
    strata: dict[str, list[int]]
    selection_digest: str
    at: int
    inspections: list[InspectionOut]


class PowerLogEntry(Strict):
    seq: Tick
    event: Annotated[str, StringConstraints(max_length=16)]
    tick: Tick
    prev: Annotated[str, StringConstraints(max_length=71)]


class InspectionCreate(Strict):
    entity_id: Id
    round_id: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    seen: bool
    seals_intact: bool | None = None
    power_log: Annotated[list[PowerLogEntry], Field(max_length=100_000)] | None = None
    power_log_head: Digest | None = None
    power_log_count: Annotated[int, Field(ge=0, le=100_000)] | None = None
    notes: Text = ""


class PowerOffPeriodOut(BaseModel):
    off_tick: int
    on_tick: int | None
    explanation: str | None
    explained_by: str | None
    explained_at: int | None


class ExplanationCreate(Strict):
    off_tick: Tick
    explanation: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"\S"),
                           AfterValidator(_no_nul)]


class ExplanationOut(BaseModel):
    device_id: str
    off_tick: int
    explanation: str
    explained_by: str
    explained_at: int


class PartyCreate(Strict):
    name: Id
    role: Annotated[str, StringConstraints(max_length=32)]
    public_key: PublicKeyBody


class PartyOut(BaseModel):
    name: str
    role: str
    keyid: str
    at: int


class HandoverOut(BaseModel):
    handover: str
    problems: dict[str, list[str]]


class CustodyRecordOut(BaseModel):
    kind: str
    from_party: str
    to_party: str
    stage: str
    tick: int
    problem: str | None
    envelope: dict[str, Any]


class DecisionOut(BaseModel):
    id: int
    device_id: str
    licensing_state: str
    granted: bool
    reasons: list[str]
    serial: int | None
    not_before: int | None
    not_after: int | None
    license: dict[str, Any] | None
    at: int


class MissingRow(BaseModel):
    device_id: str
    owner: str
    region: str
    last_attested_at: int | None
    away_since: int | None
    reasons: list[str]


class PrincipalCreate(Strict):
    name: Id
    role: Annotated[str, StringConstraints(
        pattern=r"^(international-body|inspector|owner|licensing-state)$")]
    replace: bool = False


class TokenOut(BaseModel):
    name: str
    role: str
    token: str = Field(description="The bearer token; shown once and stored only as a digest.")


class Rate(Strict):
    numerator: Annotated[int, Field(ge=0, le=1_000_000_000)]
    denominator: Annotated[int, Field(ge=1, le=1_000_000_000)]


DeviceIds = Annotated[list[Id], Field(max_length=1_000_000)]


class ExtensiveTestingCreate(Strict):
    seed: Seed
    device_ids: DeviceIds
    rate: Rate = Rate(numerator=1, denominator=1000)


class TestingAssignmentCreate(Strict):
    seed: Seed
    lines: Annotated[dict[Id, DeviceIds], Field(max_length=10_000)]
    facilities: Annotated[list[Id], Field(min_length=1, max_length=10_000)]


class CustomerAllocationCreate(Strict):
    seed: Seed
    device_ids: DeviceIds
    orders: Annotated[dict[Id, Annotated[int, Field(ge=0, le=1_000_000)]], Field(max_length=10_000)]


class ResearchSampleCreate(Strict):
    seed: Seed
    device_ids: DeviceIds
    researchers: Annotated[list[Id], Field(max_length=10_000)]
    per_researcher: Annotated[int, Field(ge=0, le=1_000_000)]


class DrawOut(BaseModel):
    id: int
    kind: str
    seed: str
    parameters: dict[str, Any]
    result: Any
    at: int


class DetectionOut(BaseModel):
    rate: float
    compromised: int
    p_at_least_one_sampled: float
