"""Routes of the registry API under ``/v1``.

Roles: the international body may do everything; inspectors read everything and record
inspections and locations; licensing states read everything and request license renewals;
owners read only their own entities and explain power-off periods of their own devices.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from flexheg.errors import InputError
from flexheg.registry import (
    AuthenticatedPrincipal,
    NewEntity,
    Registry,
    Role,
    allocate_to_customers,
    assign_to_testing,
    detection_report,
    draw_extensive_testing,
    draw_research_samples,
)
from flexheg.server._app import (
    Principal,
    config_of,
    now_of,
    owner_scope,
    registry_of,
    require,
)
from flexheg.server._schemas import (
    AttestationCreate,
    CensusResult,
    ChangeOut,
    CustodyRecordOut,
    CustomerAllocationCreate,
    DecisionOut,
    DetectionOut,
    DrawOut,
    EntityCreate,
    EntityOut,
    EntityUpdate,
    EnvelopeBody,
    ExplanationCreate,
    ExplanationOut,
    ExtensiveTestingCreate,
    HandoverOut,
    Id,
    InspectionCreate,
    InspectionOut,
    LocationCreate,
    LocationOut,
    MissingRow,
    PartyCreate,
    PartyOut,
    PowerOffPeriodOut,
    PrincipalCreate,
    ResearchSampleCreate,
    RoundCreate,
    RoundOut,
    TestingAssignmentCreate,
    TokenOut,
)
from flexheg.wire import Envelope, PublicKey

IB = Role.INTERNATIONAL_BODY
Reg = Annotated[Registry, Depends(registry_of)]
Now = Annotated[int, Depends(now_of)]
AsBody = Annotated[AuthenticatedPrincipal, Depends(require(IB))]
AsInspector = Annotated[AuthenticatedPrincipal, Depends(require(IB, Role.INSPECTOR))]
AsReader = Annotated[AuthenticatedPrincipal,
                     Depends(require(IB, Role.INSPECTOR, Role.LICENSING_STATE))]
AsOwner = Annotated[AuthenticatedPrincipal, Depends(require(Role.OWNER))]
AsLicensingState = Annotated[AuthenticatedPrincipal, Depends(require(IB, Role.LICENSING_STATE))]
MAX_CENSUS_BYTES = 2 * 1024**3


def _public_key(body: Any) -> PublicKey:
    return PublicKey.from_dict(body.model_dump(), where="public_key")


def _envelope(body: EnvelopeBody) -> Envelope:
    return Envelope.from_dict(body.model_dump(), what="envelope")


def build_router() -> APIRouter:
    router = APIRouter()
    _entity_routes(router)
    _inspection_routes(router)
    _custody_routes(router)
    _license_routes(router)
    _oversight_routes(router)
    return router


def _entity_routes(router: APIRouter) -> None:
    @router.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Report that the server runs; needs no token."""
        return {"status": "ok"}

    @router.post("/principals", tags=["service"], status_code=201)
    def issue_token(body: PrincipalCreate, registry: Reg, principal: AsBody, now: Now) -> TokenOut:
        """Create a principal with a role and return its bearer token (shown once)."""
        token = registry.issue_token(body.name, role=body.role, actor=principal.name, now=now,
                                     replace=body.replace)
        return TokenOut(name=body.name, role=body.role, token=token)

    @router.post("/entities", tags=["entities"], status_code=201)
    def register(body: EntityCreate, registry: Reg, principal: AsBody, now: Now) -> EntityOut:
        """Register an entity of any kind."""
        request = NewEntity.build(
            id=body.id, kind=body.kind, owner=body.owner, latitude=body.latitude,
            longitude=body.longitude, region=body.region, risk_weight=body.risk_weight,
            site_id=body.site_id, description=body.description,
            identity_key=None if body.identity_key is None else _public_key(body.identity_key),
            manufacturer=body.manufacturer,
            certificate=None if body.certificate is None else _envelope(body.certificate),
        )
        return EntityOut(**registry.register(request, actor=principal.name, now=now))

    @router.get("/entities", tags=["entities"])
    def list_entities(  # noqa: PLR0917 - FastAPI injects each query parameter as a parameter
        registry: Reg,
        principal: Principal,
        kind: Annotated[str | None, Query(max_length=16, pattern=r"^[a-z-]+$")] = None,
        status: Annotated[str | None, Query(max_length=16, pattern=r"^[a-z-]+$")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
    ) -> list[EntityOut]:
        """List entities by id; an owner sees only its own."""
        rows = registry.list_entities(kind=kind, owner=owner_scope(principal), status=status,
                                      limit=limit, offset=offset)
        return [EntityOut(**row) for row in rows]

    @router.get("/entities/{entity_id}", tags=["entities"])
    def get_entity(entity_id: Id, registry: Reg, principal: Principal) -> EntityOut:
        return EntityOut(**registry.get(entity_id, owner=owner_scope(principal)))

    @router.patch("/entities/{entity_id}", tags=["entities"])
    def update_entity(entity_id: Id, body: EntityUpdate, registry: Reg, principal: AsBody,
                      now: Now) -> EntityOut:
        """Change an entity; the old values go into its history with the reason."""
        values = body.model_dump(exclude_unset=True, exclude={"reason"})
        return EntityOut(**registry.update(entity_id, values, actor=principal.name,
                                           reason=body.reason, now=now))

    @router.get("/entities/{entity_id}/history", tags=["entities"])
    def history(entity_id: Id, registry: Reg, principal: Principal) -> list[ChangeOut]:
        return [ChangeOut(**row) for row in registry.history(entity_id, owner=owner_scope(principal))]

    @router.post(
        "/census",
        tags=["entities"],
        status_code=201,
        openapi_extra={"requestBody": {"required": True, "content": {
            "text/csv": {"schema": {"type": "string"}}}}},
    )
    async def import_census(request: Request, principal: AsBody) -> CensusResult:
        """Import a census CSV all-or-nothing; bad rows are listed with their line numbers."""
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_CENSUS_BYTES:
            raise HTTPException(413, "census file is larger than 2 GiB; split it")
        data = await request.body()
        registry = registry_of(request)
        now = now_of(request)
        stream = io.BytesIO(data)
        stream.name = "census upload"
        result = await run_in_threadpool(
            registry.import_census, stream, actor=principal.name, now=now
        )
        return CensusResult(**result)

    @router.post("/devices/{device_id}/attestations", tags=["devices"])
    def record_attestation(device_id: Id, body: AttestationCreate, registry: Reg,
                           principal: AsBody, now: Now) -> EntityOut:
        """Record that a verifier appraised evidence of the device at ``tick``."""
        return EntityOut(**registry.record_attestation(device_id, tick=body.tick,
                                                       actor=principal.name, now=now))

    @router.post("/devices/{device_id}/locations", tags=["devices"])
    def record_location(device_id: Id, body: LocationCreate, registry: Reg,
                        principal: AsInspector, now: Now) -> LocationOut:
        """Record where the device was observed; far from its registration flags it."""
        return LocationOut(**registry.record_location(
            device_id, latitude=body.latitude, longitude=body.longitude, source=body.source,
            actor=principal.name, now=now))

    @router.get("/reports/missing", tags=["devices"])
    def missing_report(
        registry: Reg,
        principal: AsReader,
        now: Now,
        limit: Annotated[int, Query(ge=1, le=1_000_000)] = 10_000,
    ) -> list[MissingRow]:
        """Devices not attested within the deadline, found missing, or seen away."""
        return [MissingRow(**row) for row in registry.missing_report(now=now, limit=limit)]


def _inspection_routes(router: APIRouter) -> None:
    @router.post("/inspection-rounds", tags=["inspections"], status_code=201)
    def draw_round(body: RoundCreate, registry: Reg, principal: AsBody, now: Now) -> RoundOut:
        """Draw a stratified random round from a public seed."""
        return RoundOut(**registry.draw_inspection_round(
            seed=body.seed, sample_size=body.sample_size, actor=principal.name, now=now))

    @router.get("/inspection-rounds/{round_id}", tags=["inspections"])
    def get_round(round_id: Annotated[int, Path(ge=1, le=2**31 - 1)], registry: Reg,
                  principal: AsReader) -> RoundOut:
        return RoundOut(**registry.inspection_round(round_id))

    @router.post("/inspections", tags=["inspections"], status_code=201)
    def record_inspection(body: InspectionCreate, registry: Reg, principal: AsInspector,
                          now: Now) -> InspectionOut:
        """Record an inspection result, with an optional power log to verify."""
        power_log = None if body.power_log is None else [e.model_dump() for e in body.power_log]
        return InspectionOut(**registry.record_inspection(
            body.entity_id, seen=body.seen, seals_intact=body.seals_intact, power_log=power_log,
            power_log_head=body.power_log_head, power_log_count=body.power_log_count,
            round_id=body.round_id, notes=body.notes, inspector=principal.name, now=now))

    @router.get("/devices/{device_id}/power-off-periods", tags=["inspections"])
    def power_off_periods(device_id: Id, registry: Reg, principal: Principal) -> list[PowerOffPeriodOut]:
        rows = registry.power_off_periods(device_id, owner=owner_scope(principal))
        return [PowerOffPeriodOut(**row) for row in rows]

    @router.post("/devices/{device_id}/power-off-explanations", tags=["inspections"], status_code=201)
    def explain_power_off(device_id: Id, body: ExplanationCreate, registry: Reg,
                          principal: AsOwner, now: Now) -> ExplanationOut:
        """Record the owner's explanation of a power-off period longer than the threshold."""
        return ExplanationOut(**registry.explain_power_off(
            device_id, off_tick=body.off_tick, explanation=body.explanation,
            owner=principal.name, now=now))


def _custody_routes(router: APIRouter) -> None:
    @router.post("/parties", tags=["custody"], status_code=201)
    def register_party(body: PartyCreate, registry: Reg, principal: AsBody, now: Now) -> PartyOut:
        """Register the signing key of a manufacturer, fab, tester, customer, data center or
        destruction facility."""
        return PartyOut(**registry.register_party(
            body.name, role=body.role, public_key=_public_key(body.public_key),
            actor=principal.name, now=now))

    @router.post("/custody/handovers", tags=["custody"], status_code=201)
    def record_handover(body: EnvelopeBody, registry: Reg, principal: AsInspector,
                        now: Now) -> HandoverOut:
        """Record a signed hand-over; a gap or a bad signature flags each device it lists."""
        return HandoverOut(**registry.record_handover(_envelope(body), actor=principal.name, now=now))

    @router.post("/custody/destructions", tags=["custody"], status_code=201)
    def record_destruction(body: EnvelopeBody, registry: Reg, principal: AsInspector,
                           now: Now) -> EntityOut:
        """Discard a device on a destruction record signed by a trusted facility."""
        return EntityOut(**registry.record_destruction(_envelope(body), actor=principal.name, now=now))

    @router.get("/devices/{device_id}/custody", tags=["custody"])
    def custody_chain(device_id: Id, registry: Reg, principal: Principal) -> list[CustodyRecordOut]:
        rows = registry.custody_chain(device_id, owner=owner_scope(principal))
        return [CustodyRecordOut(**row) for row in rows]


def _license_routes(router: APIRouter) -> None:
    @router.post("/devices/{device_id}/license-renewals", tags=["licenses"], status_code=201)
    def renew_license(  # noqa: PLR0917 - FastAPI injects each dependency as a parameter
        device_id: Id, request: Request, registry: Reg, principal: AsLicensingState,
        now: Now,
        state: Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")] = None,
    ) -> DecisionOut:
        """Renew the device's operating license, or record why it is refused.

        A licensing state renews under its own name; the international body names the state.
        """
        config = config_of(request)
        licensing_state = principal.name if principal.role is Role.LICENSING_STATE else state
        if licensing_state is None:
            raise InputError("name the licensing state with ?state=NAME")
        key = config.license_keys.get(licensing_state)
        if key is None:
            raise InputError(
                f"this server holds no license key for {licensing_state!r}; start it with "
                f"--license-key {licensing_state}=KEY.pem"
            )
        if config.agreement_digest is None:
            raise InputError("this server has no agreement configured; start it with --agreement")
        return DecisionOut(**registry.renew_license(
            device_id, licensing_state=licensing_state, signing_key=key,
            agreement_digest=config.agreement_digest, actor=principal.name, now=now))

    @router.get("/devices/{device_id}/license-decisions", tags=["licenses"])
    def license_decisions(device_id: Id, registry: Reg, principal: Principal) -> list[DecisionOut]:
        rows = registry.license_decisions(device_id, owner=owner_scope(principal))
        return [DecisionOut(**row) for row in rows]


def _oversight_routes(router: APIRouter) -> None:
    @router.post("/oversight/extensive-testing", tags=["oversight"], status_code=201)
    def extensive_testing(body: ExtensiveTestingCreate, registry: Reg, principal: AsBody,
                          now: Now) -> DrawOut:
        """Draw devices for extensive testing, each independently at the given rate."""
        rate = Fraction(body.rate.numerator, body.rate.denominator)
        result = draw_extensive_testing(body.seed, body.device_ids, rate)
        return DrawOut(**registry.record_oversight_draw(
            "extensive-testing", seed=body.seed,
            parameters={"rate": str(rate), "devices": len(body.device_ids)},
            result=result, actor=principal.name, now=now))

    @router.post("/oversight/testing-assignments", tags=["oversight"], status_code=201)
    def testing_assignment(body: TestingAssignmentCreate, registry: Reg, principal: AsBody,
                           now: Now) -> DrawOut:
        """Assign each line's guarantee processors at random to the testing facilities."""
        result = assign_to_testing(body.seed, body.lines, body.facilities)
        return DrawOut(**registry.record_oversight_draw(
            "testing-assignment", seed=body.seed,
            parameters={"facilities": sorted(body.facilities), "lines": sorted(body.lines)},
            result=result, actor=principal.name, now=now))

    @router.post("/oversight/customer-allocations", tags=["oversight"], status_code=201)
    def customer_allocation(body: CustomerAllocationCreate, registry: Reg, principal: AsBody,
                            now: Now) -> DrawOut:
        """Allocate devices to customer orders from a seeded permutation."""
        result = allocate_to_customers(body.seed, body.device_ids, body.orders)
        return DrawOut(**registry.record_oversight_draw(
            "customer-allocation", seed=body.seed, parameters={"orders": body.orders},
            result=result, actor=principal.name, now=now))

    @router.post("/oversight/research-samples", tags=["oversight"], status_code=201)
    def research_samples(body: ResearchSampleCreate, registry: Reg, principal: AsBody,
                         now: Now) -> DrawOut:
        """Draw devices for the security researchers' sample program."""
        result = draw_research_samples(body.seed, body.device_ids, body.researchers,
                                       body.per_researcher)
        return DrawOut(**registry.record_oversight_draw(
            "research-sample", seed=body.seed,
            parameters={"researchers": sorted(body.researchers), "per_researcher": body.per_researcher},
            result=result, actor=principal.name, now=now))

    @router.get("/oversight/detection", tags=["oversight"])
    def detection(
        principal: Principal,
        compromised: Annotated[int, Query(ge=0, le=10**12)],
        rate_numerator: Annotated[int, Query(ge=0, le=10**9)] = 1,
        rate_denominator: Annotated[int, Query(ge=1, le=10**9)] = 1000,
    ) -> DetectionOut:
        """Return the probability that at least one of ``compromised`` devices is sampled."""
        if rate_numerator > rate_denominator:
            raise InputError("the sampling rate must not exceed 1")
        return DetectionOut(**detection_report(Fraction(rate_numerator, rate_denominator), compromised))
