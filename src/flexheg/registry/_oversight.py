"""Production oversight: random draws over finished devices, from a public seed.

Every draw keys each item with SHA-256 over the canonical JSON of (purpose, seed, ...) (see
:func:`flexheg.registry._sampling.draw_key`), so anyone with the seed and the input lists can
recompute it, and nobody can predict it before the seed is published.

* Testing assignment: each production line's devices, in draw-key order, are dealt round-robin to
  the testing facilities, which are themselves ordered by draw key per line. Every facility gets
  devices of every line, so a compromised line cannot choose its tester.
* Extensive testing: each device is drawn independently with probability ``rate`` (exactly,
  on the 256-bit key), so n compromised devices are caught with probability 1 - (1 - rate)^n.
* Customer allocation: the devices in draw-key order are dealt to the orders in draw-key order,
  so no buyer can predict which devices it receives.
* Research samples: the devices with the smallest draw keys go round-robin to the researchers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from flexheg.analysis.detection import p_at_least_one_sampled
from flexheg.errors import InputError
from flexheg.registry._licensing import LicensingMixin
from flexheg.registry._models import OversightDraw
from flexheg.registry._sampling import bernoulli_selected, draw_key

logger = logging.getLogger(__name__)

DEFAULT_EXTENSIVE_TESTING_RATE = Fraction(1, 1000)


def _check_ids(ids: Sequence[str], what: str) -> list[str]:
    if len(set(ids)) != len(ids):
        raise InputError(f"{what} contain repeats; list each once")
    return list(ids)


def _order(seed: str, purpose: str, ids: Sequence[str], *context: str) -> list[str]:
    return sorted(ids, key=lambda item: draw_key(seed, purpose, *context, item))


def assign_to_testing(
    seed: str, lines: Mapping[str, Sequence[str]], facilities: Sequence[str]
) -> dict[str, str]:
    """Return device id -> testing facility for the guarantee processors of each line."""
    if not facilities:
        raise InputError("no testing facilities given; name at least one")
    _check_ids(facilities, "testing facilities")
    _check_ids([d for devices in lines.values() for d in devices], "device ids")
    assignment = {}
    for line in sorted(lines):
        order = _order(seed, "testing-facility-order", facilities, line)
        for index, device_id in enumerate(_order(seed, "testing-assignment", lines[line], line)):
            assignment[device_id] = order[index % len(order)]
    return assignment


def draw_extensive_testing(
    seed: str, device_ids: Sequence[str], rate: Fraction = DEFAULT_EXTENSIVE_TESTING_RATE
) -> list[str]:
    """Return the devices drawn for extensive testing, each independently with ``rate``."""
    if not 0 <= rate <= 1:
        raise InputError(f"sampling rate {rate} must lie between 0 and 1")
    _check_ids(device_ids, "device ids")
    return sorted(d for d in device_ids if bernoulli_selected(draw_key(seed, "extensive-testing", d), rate))


def allocate_to_customers(
    seed: str, device_ids: Sequence[str], orders: Mapping[str, int]
) -> dict[str, list[str]]:
    """Return customer -> device ids, filling each order from a seeded permutation."""
    if any(count < 0 for count in orders.values()):
        raise InputError("order sizes must not be negative")
    wanted = sum(orders.values())
    if wanted > len(device_ids):
        raise InputError(f"orders ask for {wanted} devices but only {len(device_ids)} are available")
    pool = _order(seed, "customer-allocation", _check_ids(device_ids, "device ids"))
    allocation = {}
    start = 0
    for customer in _order(seed, "customer-order", list(orders)):
        allocation[customer] = sorted(pool[start:start + orders[customer]])
        start += orders[customer]
    return allocation


def draw_research_samples(
    seed: str, device_ids: Sequence[str], researchers: Sequence[str], per_researcher: int
) -> dict[str, list[str]]:
    """Return researcher -> device ids for the security research sample program."""
    if per_researcher < 0:
        raise InputError("samples per researcher must not be negative")
    _check_ids(researchers, "researchers")
    needed = per_researcher * len(researchers)
    if needed > len(device_ids):
        raise InputError(f"{needed} samples needed but only {len(device_ids)} devices available")
    pool = _order(seed, "research-sample", _check_ids(device_ids, "device ids"))[:needed]
    order = sorted(researchers)
    samples: dict[str, list[str]] = {name: [] for name in order}
    for index, device_id in enumerate(pool):
        samples[order[index % len(order)]].append(device_id)
    return {name: sorted(ids) for name, ids in samples.items()}


def detection_report(rate: Fraction | float, compromised: int) -> dict[str, Any]:
    """Return the probability that at least one of ``compromised`` devices is sampled."""
    return {
        "rate": float(rate),
        "compromised": compromised,
        "p_at_least_one_sampled": p_at_least_one_sampled(float(rate), compromised),
    }


class OversightMixin(LicensingMixin):
    def record_oversight_draw(
        self,
        kind: str,
        *,
        seed: str,
        parameters: Mapping[str, Any],
        result: Any,
        actor: str,
        now: int,
    ) -> dict[str, Any]:
        """Store a production-oversight draw so that it can be published and re-checked."""
        with self.db.write() as session:
            row = OversightDraw(
                kind=kind,
                seed=seed,
                parameters=json.dumps(parameters, sort_keys=True),
                result=json.dumps(result, sort_keys=True),
                actor=actor,
                at=now,
            )
            session.add(row)
            session.flush()
            draw_id = row.id
        logger.info("oversight draw %d (%s) recorded by %s", draw_id, kind, actor)
        return {"id": draw_id, "kind": kind, "seed": seed, "parameters": dict(parameters),
                "result": result, "at": now}
