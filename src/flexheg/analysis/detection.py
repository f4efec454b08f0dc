"""Closed-form detection probabilities for production oversight, inspections and layered defences.

Every function here is pure and takes plain numbers. Probabilities are checked to lie in [0, 1]
and counts to be non-negative. Anything else raises :class:`~flexheg.errors.InputError`.

Independence is the key assumption throughout: sampled devices are drawn independently at a fixed
rate, inspections in different periods are independent trials, and defence layers fail
independently of each other. Correlated failures (one compromised test lab seeing every sampled
chip, say) make the true detection probability lower than these formulas give.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from flexheg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "combine_layers",
    "expected_periods_to_detection",
    "p_at_least_one_sampled",
    "p_batch_caught",
    "p_detected_within",
    "p_none_sampled",
    "periods_for_confidence",
    "rate_per_step",
    "sampling_rate_for_confidence",
]


def _check_probability(name: str, value: float) -> float:
    if not isinstance(value, int | float) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be a probability between 0 and 1, got {value!r}")
    return float(value)


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def p_none_sampled(rate: float, compromised: int) -> float:
    """Return the probability that none of ``compromised`` devices is sampled at ``rate``.

    Each device is sampled independently with probability ``rate``, so the result is
    ``(1 - rate) ** compromised``.
    """
    rate = _check_probability("rate", rate)
    compromised = _check_count("compromised", compromised)
    # log1p keeps precision for tiny rates and very large batches.
    if rate == 1.0:
        return 0.0 if compromised > 0 else 1.0
    return math.exp(compromised * math.log1p(-rate))


def p_at_least_one_sampled(rate: float, compromised: int) -> float:
    """Return the probability that at least one of ``compromised`` devices is sampled.

    This is ``1 - (1 - rate) ** compromised``: about 0.632 for 1000 devices sampled at 1/1000.
    It is the complement of :func:`p_none_sampled`, not the probability that none is sampled.
    """
    rate = _check_probability("rate", rate)
    compromised = _check_count("compromised", compromised)
    if rate == 1.0:
        return 1.0 if compromised > 0 else 0.0
    # expm1 keeps precision when the result is tiny (small rate, small batch).
    return -math.expm1(compromised * math.log1p(-rate))


def p_batch_caught(rate: float, compromised: int, detect_if_sampled: float = 1.0) -> float:
    """Return the probability that production testing catches a compromised batch.

    A sampled compromised device reveals the compromise with probability ``detect_if_sampled``
    (imaging and testing can miss a well-hidden change), independently per device. The batch is
    caught when at least one device is both sampled and found: ``1 - (1 - rate * d) ** n``.
    """
    rate = _check_probability("rate", rate)
    detect_if_sampled = _check_probability("detect_if_sampled", detect_if_sampled)
    return p_at_least_one_sampled(rate * detect_if_sampled, compromised)


def combine_layers(probabilities: Iterable[float]) -> float:
    """Combine independent defence layers: the probability that at least one layer detects.

    With per-layer detection probabilities ``p_i`` the result is ``1 - prod(1 - p_i)``. An empty
    set of layers detects nothing and returns 0.
    """
    miss = 1.0
    for index, probability in enumerate(probabilities):
        miss *= 1.0 - _check_probability(f"layer {index} probability", probability)
    return 1.0 - miss


def p_detected_within(rate: float, periods: int, sites: int = 1, detect_if_inspected: float = 1.0) -> float:
    """Return the probability that a diversion is found within ``periods`` inspection periods.

    Each of ``sites`` affected sites is inspected independently with probability ``rate`` in each
    period, and an inspection of an affected site reveals the diversion with probability
    ``detect_if_inspected`` (a census count finds missing chips with probability 1). The result is
    ``1 - (1 - rate * d) ** (periods * sites)``.
    """
    rate = _check_probability("rate", rate)
    detect_if_inspected = _check_probability("detect_if_inspected", detect_if_inspected)
    periods = _check_count("periods", periods)
    sites = _check_count("sites", sites)
    return p_at_least_one_sampled(rate * detect_if_inspected, periods * sites)


def expected_periods_to_detection(per_period: float) -> float:
    """Return the mean number of periods until the first detection, counting the detecting one.

    Detection in each period is an independent trial with probability ``per_period``, so the
    waiting time is geometric with mean ``1 / per_period``. A zero probability gives infinity.
    """
    per_period = _check_probability("per_period", per_period)
    return math.inf if per_period == 0.0 else 1.0 / per_period


def periods_for_confidence(per_period: float, confidence: float) -> int:
    """Return the fewest periods after which detection has happened with at least ``confidence``.

    Raises:
        InputError: if ``per_period`` is 0 (never detected) or ``confidence`` is 1 (never reached
            by a geometric waiting time unless ``per_period`` is 1).
    """
    per_period = _check_probability("per_period", per_period)
    confidence = _check_probability("confidence", confidence)
    if confidence == 0.0:
        return 0
    if per_period == 1.0:
        return 1
    if per_period == 0.0 or confidence == 1.0:
        raise InputError(
            f"confidence {confidence} is never reached with per-period probability {per_period}; "
            "use a confidence below 1 and a per-period probability above 0"
        )
    periods = math.ceil(math.log1p(-confidence) / math.log1p(-per_period))
    # Floating-point rounding can put the ceiling one period short of the target.
    while p_at_least_one_sampled(per_period, periods) < confidence:
        periods += 1
    return periods


def sampling_rate_for_confidence(compromised: int, confidence: float) -> float:
    """Return the smallest sampling rate that samples one of ``compromised`` with ``confidence``.

    Solves ``1 - (1 - p) ** n = confidence`` for ``p``.
    """
    compromised = _check_count("compromised", compromised)
    confidence = _check_probability("confidence", confidence)
    if compromised == 0:
        if confidence > 0.0:
            raise InputError("an empty batch is never sampled; pass compromised >= 1")
        return 0.0
    return -math.expm1(math.log1p(-confidence) / compromised)


def rate_per_step(rate: float, steps_per_period: float) -> float:
    """Convert a per-period probability to the per-step probability with the same total.

    ``1 - (1 - rate) ** (1 / steps_per_period)``: a monthly probability of 0.1 becomes about
    0.0240 per week with 52/12 weeks per month.
    """
    rate = _check_probability("rate", rate)
    if not steps_per_period > 0:
        raise InputError(f"steps_per_period must be positive, got {steps_per_period!r}")
    if rate == 1.0:
        return 1.0
    return -math.expm1(math.log1p(-rate) / steps_per_period)
