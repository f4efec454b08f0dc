"""The registry: entities, census, inspections, chain of custody, discard, licenses and
production oversight.

The registry keeps five kinds of entity (flexHEG devices, non-flexHEG chips, data centers, fabs
and semiconductor manufacturing equipment), each with an owner, a registered location and a
status, and records the old and new values of every change. SQLite is the embedded default;
PostgreSQL works the same way. The schema is created by Alembic migrations when the registry
opens.

Example, with time given explicitly as ticks::

    from flexheg.registry import NewEntity, Registry
    from flexheg.wire import SigningKey

    registry = Registry.open("sqlite:///registry.db")
    now = 1_800_000_000
    registry.register(
        NewEntity.build(id="dc-1", kind="data-center", owner="acme", latitude=52.37,
                        longitude=4.90, region="NL"),
        actor="ib", now=now)
    registry.register(
        NewEntity.build(id="gpu-1", kind="device", owner="acme", latitude=52.37,
                        longitude=4.90, region="NL", site_id="dc-1",
                        identity_key=SigningKey.generate().public),
        actor="ib", now=now)
    round_ = registry.draw_inspection_round(seed="sha256:...", sample_size=10,
                                            actor="ib", now=now)
    registry.record_location("gpu-1", latitude=1.35, longitude=103.8, source="inspector",
                             actor="inspector-1", now=now)
    decision = registry.renew_license("gpu-1", licensing_state="NL", signing_key=state_key,
                                      agreement_digest=agreement, actor="nl", now=now)
    assert decision["reasons"] == ["away-from-registered-location"]

:func:`flexheg.registry.demo.run_registry_demo` runs this scenario end to end.
"""

from flexheg.registry._census import CENSUS_COLUMNS, CensusImportError, RowError
from flexheg.registry._core import ConflictError, NotFoundError, RegistryConfig
from flexheg.registry._entities import NewEntity, distance_km, public_key_from_hex
from flexheg.registry._licensing import RefusalReason
from flexheg.registry._models import EntityKind, EntityStatus, Role
from flexheg.registry._oversight import (
    DEFAULT_EXTENSIVE_TESTING_RATE,
    allocate_to_customers,
    assign_to_testing,
    detection_report,
    draw_extensive_testing,
    draw_research_samples,
)
from flexheg.registry._parties import PartyRole
from flexheg.registry._powerlog import PowerOffGap, power_off_gaps
from flexheg.registry._principals import AuthenticatedPrincipal
from flexheg.registry._registry import Registry
from flexheg.registry._sampling import ALGORITHM as SAMPLING_ALGORITHM
from flexheg.registry._sampling import Stratum, allocate, select_sample
from flexheg.registry._statements import CustodyHandover, CustodyStage, DestructionRecord

__all__ = [
    "CENSUS_COLUMNS",
    "DEFAULT_EXTENSIVE_TESTING_RATE",
    "SAMPLING_ALGORITHM",
    "AuthenticatedPrincipal",
    "CensusImportError",
    "ConflictError",
    "CustodyHandover",
    "CustodyStage",
    "DestructionRecord",
    "EntityKind",
    "EntityStatus",
    "NewEntity",
    "NotFoundError",
    "PartyRole",
    "PowerOffGap",
    "RefusalReason",
    "Registry",
    "RegistryConfig",
    "Role",
    "RowError",
    "Stratum",
    "allocate",
    "allocate_to_customers",
    "assign_to_testing",
    "detection_report",
    "distance_km",
    "draw_extensive_testing",
    "draw_research_samples",
    "power_off_gaps",
    "public_key_from_hex",
    "select_sample",
]
