"""A race model that turns a defector's compute lead into ``P(W|D)``.

Assumptions:

* Each side brings ``baseline_chip_months`` of compute to the race that follows a detected
  defection. The defector adds the compute it gained while the defection was hidden and while the
  other side was still responding.
* The winner is decided by a Tullock contest: with effective compute ``x`` against ``y`` the
  defector wins with probability ``x**k / (x**k + y**k)``. With no lead this is 0.5. The exponent
  ``k`` (``decisiveness``) sets how much a lead matters: 1 is proportional, large values approach
  "whoever has more compute wins".
* A verification-based agreement detects a defection but does not prevent it. Once detected, the
  other side drops its own restrictions within a short response time, but the defector can turn
  its whole fleet to forbidden work at once (the compute overhang).
* A ruleset-based agreement keeps the devices enforcing the rules, so a defector gains only from
  chips whose guarantees it has defeated. After detection the other side must first build its own
  way around the rules, which takes longer, while the defector keeps using its defeated chips and
  may unlock a fraction of the rest.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flexheg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "AgreementKind",
    "DefectionScenario",
    "RaceModel",
    "lead_chip_months",
]


class AgreementKind(enum.StrEnum):
    """Kind of agreement: devices that report compliance, or devices that enforce the rules."""

    VERIFICATION = "verification"
    RULESET = "ruleset"


def _check_non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0.0:
        raise InputError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RaceModel:
    """Tullock contest between the defector and the other side after a defection.

    Attributes:
        baseline_chip_months: compute each side brings to the race, in chip-months.
        decisiveness: the contest exponent ``k``.
    """

    baseline_chip_months: float
    decisiveness: float = 2.0

    def __post_init__(self) -> None:
        if not self.baseline_chip_months > 0.0 or math.isinf(self.baseline_chip_months):
            raise InputError(
                f"baseline_chip_months must be a positive finite number, got {self.baseline_chip_months!r}"
            )
        if not self.decisiveness > 0.0 or math.isinf(self.decisiveness):
            raise InputError(f"decisiveness must be a positive finite number, got {self.decisiveness!r}")

    def p_win(self, lead: float) -> float:
        """Return ``P(W|D)`` for a defector with ``lead`` chip-months more than the other side."""
        lead = _check_non_negative("lead", lead)
        return float(self.p_win_array(np.asarray([lead], dtype=np.float64))[0])

    def p_win_array(self, leads: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Vectorised :meth:`p_win`; an infinite lead wins with probability 1."""
        if np.any(~(leads >= 0.0)):
            raise InputError("every lead must be a non-negative number of chip-months")
        ratio = self.baseline_chip_months / (self.baseline_chip_months + leads)
        # x**k / (x**k + y**k) rewritten as 1 / (1 + (y/x)**k) stays finite for huge leads.
        result: npt.NDArray[np.float64] = 1.0 / (1.0 + ratio**self.decisiveness)
        return result

    def lead_for_p_win(self, p_win: float) -> float:
        """Return the lead that gives the defector ``p_win``; the inverse of :meth:`p_win`."""
        if not 0.5 <= p_win < 1.0:
            raise InputError(f"p_win must be in [0.5, 1) for a non-negative lead, got {p_win!r}")
        ratio = float(((1.0 - p_win) / p_win) ** (1.0 / self.decisiveness))
        return self.baseline_chip_months * (1.0 / ratio - 1.0)


@dataclass(frozen=True)
class DefectionScenario:
    """Rates and times that determine a defector's lead under each kind of agreement.

    Attributes:
        defector_fleet: chips the defector owns under the agreement.
        covert_chips: chips the defector uses for forbidden work while hidden.
        detection_months: time from the start of the defection to its detection.
        response_months_verification: time the other side needs to drop its restrictions under a
            verification-based agreement.
        response_months_ruleset: time the other side needs to defeat the rules on its own chips
            under a ruleset-based agreement.
        ruleset_unlock_fraction: fraction of the rest of its fleet that the defector can unlock
            once it defects openly under a ruleset-based agreement.
    """

    defector_fleet: float
    covert_chips: float
    detection_months: float
    response_months_verification: float = 1.0
    response_months_ruleset: float = 12.0
    ruleset_unlock_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "defector_fleet",
            "covert_chips",
            "detection_months",
            "response_months_verification",
            "response_months_ruleset",
        ):
            _check_non_negative(name, getattr(self, name))
        if self.covert_chips > self.defector_fleet:
            raise InputError(
                f"covert_chips ({self.covert_chips!r}) cannot exceed defector_fleet ({self.defector_fleet!r})"
            )
        if not 0.0 <= self.ruleset_unlock_fraction <= 1.0:
            raise InputError(
                f"ruleset_unlock_fraction must be between 0 and 1, got {self.ruleset_unlock_fraction!r}"
            )


def lead_chip_months(
    kind: AgreementKind, scenario: DefectionScenario, covert_gained: float | None = None
) -> float:
    """Return the defector's lead in chip-months when the other side has responded.

    ``covert_gained`` is the compute gained while hidden. By default it is
    ``covert_chips * detection_months``; the fleet simulation passes its measured value.
    """
    hidden = (
        scenario.covert_chips * scenario.detection_months
        if covert_gained is None
        else _check_non_negative("covert_gained", covert_gained)
    )
    if kind is AgreementKind.VERIFICATION:
        overt_rate = scenario.defector_fleet
        response = scenario.response_months_verification
    else:
        unlocked = scenario.ruleset_unlock_fraction * (scenario.defector_fleet - scenario.covert_chips)
        overt_rate = scenario.covert_chips + unlocked
        response = scenario.response_months_ruleset
    return hidden + overt_rate * response
