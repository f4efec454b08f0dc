"""Stability of a two-player agreement on AI development, as a one-shot cooperate/defect game.

Model and assumptions:

* Two players (states or blocs). Cooperation keeps the balance of power and is worth
  ``U(C) = 1``. Winning an unrestricted race is worth ``U(W) = u_win`` relative to that.
* An unrestricted race ends in catastrophe for both with probability ``P(doom) = p_doom``.
  Catastrophe is worth 0. Losing the race is worth ``u_lose``, which is 0 in the base model
  (as bad as catastrophe) and may be raised toward ``U(C)`` in the extension.
* The player who defects first wins the race with probability ``P(W|D) = p_win_given_defect``.
  Once a defection is detected, the other player defects too, so the agreement ends.

The first defector expects ``(1 - P(doom)) * (U(W) * P(W|D) + u_lose * (1 - P(W|D)))``, which is
``U(W) * (1 - P(doom)) * P(W|D)`` in the base model. Cooperation is stable (the game is a stag
hunt) when that payoff is strictly below ``U(C)``. Solving for ``P(W|D)`` gives the threshold
``1 / (U(W) * (1 - P(doom)))`` of the base model.

Because ``P(W|D) <= 1``, cooperation is stable for every ``P(W|D)`` exactly when
``U(W) * (1 - P(doom)) < 1``, that is when ``P(doom) > 1 - 1 / U(W)``. The looser statement
"stable for any P(W|D) when P(doom) > 1 / U(W)" holds only for ``U(W) <= 2``, where
``1 / U(W) >= 1 - 1 / U(W)``. For ``U(W) = 4`` and ``P(doom) = 0.3`` the threshold is about 0.357.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from flexheg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "EntryResult",
    "Player",
    "StabilityResult",
    "always_stable",
    "analyze",
    "defect_payoff",
    "is_stable",
    "p_doom_always_stable",
    "p_win_threshold",
    "round_threshold",
    "second_player_payoff",
    "treaty_entry",
]


def _check_probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InputError(f"{name} must be a number between 0 and 1, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be between 0 and 1, got {value!r}")
    return float(value)


def _check_utilities(u_win: float, u_lose: float, u_coop: float) -> None:
    for name, value in (("u_win", u_win), ("u_lose", u_lose), ("u_coop", u_coop)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"{name} must be a finite number, got {value!r}")
    if u_lose < 0.0:
        raise InputError(f"u_lose must be at least 0 (the value of catastrophe), got {u_lose!r}")
    if u_coop <= 0.0:
        raise InputError(f"u_coop must be positive, got {u_coop!r}")
    if u_win <= u_lose:
        raise InputError(
            f"u_win ({u_win!r}) must be greater than u_lose ({u_lose!r}); raise u_win or lower u_lose"
        )


def defect_payoff(u_win: float, p_doom: float, p_win_given_defect: float, *, u_lose: float = 0.0) -> float:
    """Return the first defector's expected utility.

    ``(1 - p_doom) * (u_win * p_win_given_defect + u_lose * (1 - p_win_given_defect))``, which is
    ``u_win * (1 - p_doom) * p_win_given_defect`` when losing is worth 0.
    """
    _check_utilities(u_win, u_lose, 1.0)
    p_doom = _check_probability("p_doom", p_doom)
    p_win_given_defect = _check_probability("p_win_given_defect", p_win_given_defect)
    return (1.0 - p_doom) * (u_win * p_win_given_defect + u_lose * (1.0 - p_win_given_defect))


def second_player_payoff(
    u_win: float, p_doom: float, p_win_given_defect: float, *, u_lose: float = 0.0
) -> float:
    """Return the expected utility of the player whose partner defected first."""
    return defect_payoff(
        u_win,
        p_doom,
        1.0 - _check_probability("p_win_given_defect", p_win_given_defect),
        u_lose=u_lose,
    )


def p_win_threshold(u_win: float, p_doom: float, *, u_lose: float = 0.0, u_coop: float = 1.0) -> float:
    """Return the value of ``P(W|D)`` below which cooperation is stable.

    Cooperation is stable when ``P(W|D)`` is strictly below the returned value. The value may
    exceed 1 (then every ``P(W|D)`` is stable) and is ``math.inf`` when ``p_doom`` is 1.
    With ``u_lose = 0`` and ``u_coop = 1`` it is ``1 / (u_win * (1 - p_doom))``.
    """
    _check_utilities(u_win, u_lose, u_coop)
    p_doom = _check_probability("p_doom", p_doom)
    if p_doom == 1.0:
        return math.inf
    return (u_coop / (1.0 - p_doom) - u_lose) / (u_win - u_lose)


def is_stable(
    u_win: float,
    p_doom: float,
    p_win_given_defect: float,
    *,
    u_lose: float = 0.0,
    u_coop: float = 1.0,
) -> bool:
    """Return whether defecting first pays strictly less than cooperating."""
    payoff = defect_payoff(u_win, p_doom, p_win_given_defect, u_lose=u_lose)
    return payoff < u_coop


def p_doom_always_stable(u_win: float, *, u_lose: float = 0.0, u_coop: float = 1.0) -> float:
    """Return the ``P(doom)`` above which cooperation is stable for every ``P(W|D)``.

    Setting ``P(W|D) = 1`` in the stability condition gives ``(1 - P(doom)) * u_win < u_coop``,
    so the bound is ``1 - u_coop / u_win`` (0 when winning is worth no more than cooperating).
    ``u_lose`` does not enter because a sure winner never loses.
    """
    _check_utilities(u_win, u_lose, u_coop)
    return max(0.0, 1.0 - u_coop / u_win)


def always_stable(u_win: float, p_doom: float, *, u_lose: float = 0.0, u_coop: float = 1.0) -> bool:
    """Return whether cooperation is stable whatever the first defector's odds of winning."""
    return is_stable(u_win, p_doom, 1.0, u_lose=u_lose, u_coop=u_coop)


def round_threshold(value: float, decimals: int = 2) -> float:
    """Round a ``P(W|D)`` threshold down to ``decimals`` places.

    Rounding down keeps the printed bound safe: any ``P(W|D)`` below the printed value is also
    below the exact threshold. For 0.7407 and 0.7018 this gives the same 0.74 and 0.70 as
    rounding to nearest.
    """
    if decimals < 0:
        raise InputError(f"decimals must be at least 0, got {decimals!r}")
    if math.isinf(value):
        return value
    scale = float(10**decimals)
    # The small tolerance keeps 0.7 * 100 = 69.99999999999999 from rounding down to 0.69.
    return math.floor(value * scale + 1e-9) / scale


@dataclass(frozen=True)
class StabilityResult:
    """Outcome of the stability analysis for one parameter set."""

    u_win: float
    p_doom: float
    u_lose: float
    u_coop: float
    threshold: float
    p_doom_always_stable: float
    always_stable: bool
    p_win_given_defect: float | None
    defect_payoff: float | None
    stable: bool | None

    def to_dict(self) -> dict[str, float | bool | None]:
        return {
            "u_win": self.u_win,
            "p_doom": self.p_doom,
            "u_lose": self.u_lose,
            "u_coop": self.u_coop,
            "p_win_given_defect_threshold": self.threshold,
            "p_win_given_defect_threshold_rounded": round_threshold(self.threshold),
            "p_doom_always_stable": self.p_doom_always_stable,
            "always_stable": self.always_stable,
            "p_win_given_defect": self.p_win_given_defect,
            "defect_payoff": self.defect_payoff,
            "stable": self.stable,
        }


def analyze(
    u_win: float,
    p_doom: float,
    p_win_given_defect: float | None = None,
    *,
    u_lose: float = 0.0,
    u_coop: float = 1.0,
) -> StabilityResult:
    """Compute the threshold, the always-stable bound and, given ``P(W|D)``, the verdict."""
    threshold = p_win_threshold(u_win, p_doom, u_lose=u_lose, u_coop=u_coop)
    payoff: float | None = None
    stable: bool | None = None
    if p_win_given_defect is not None:
        payoff = defect_payoff(u_win, p_doom, p_win_given_defect, u_lose=u_lose)
        stable = payoff < u_coop
    return StabilityResult(
        u_win=float(u_win),
        p_doom=float(p_doom),
        u_lose=float(u_lose),
        u_coop=float(u_coop),
        threshold=threshold,
        p_doom_always_stable=p_doom_always_stable(u_win, u_lose=u_lose, u_coop=u_coop),
        always_stable=always_stable(u_win, p_doom, u_lose=u_lose, u_coop=u_coop),
        p_win_given_defect=p_win_given_defect,
        defect_payoff=payoff,
        stable=stable,
    )


@dataclass(frozen=True)
class Player:
    """One side deciding whether to enter a treaty, with its own utilities.

    ``p_win_outside`` is this player's probability of winning the race if no treaty is signed.
    ``u_coop`` is what the treaty is worth to this player, which concessions from the other side
    can raise above 1.
    """

    name: str
    u_win: float
    p_doom: float
    p_win_outside: float
    u_lose: float = 0.0
    u_coop: float = 1.0


@dataclass(frozen=True)
class EntryResult:
    """Whether one player prefers the treaty to racing, and the concession that would change it."""

    name: str
    race_payoff: float
    treaty_payoff: float
    joins: bool
    concession_needed: float

    def to_dict(self) -> dict[str, float | bool | str]:
        return {
            "name": self.name,
            "race_payoff": self.race_payoff,
            "treaty_payoff": self.treaty_payoff,
            "joins": self.joins,
            "concession_needed": self.concession_needed,
        }


def treaty_entry(leader: Player, laggard: Player) -> tuple[EntryResult, EntryResult]:
    """Decide whether each of two unequal players prefers entering the treaty to racing.

    Entering is the same cooperate/defect choice as staying in, except that the race starts from
    unequal positions: the leader wins with ``leader.p_win_outside`` and the laggard with its
    complement. A player joins when the treaty is worth strictly more than racing. The concession
    needed is how much the player's treaty value must rise (0 when it already joins).

    Raises:
        InputError: if the two winning probabilities do not add up to 1.
    """
    total = leader.p_win_outside + laggard.p_win_outside
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        raise InputError(
            f"p_win_outside of {leader.name!r} and {laggard.name!r} must add up to 1 in a "
            f"two-player race, got {total!r}; set the laggard's to 1 - the leader's"
        )
    return _entry(leader), _entry(laggard)


def _entry(player: Player) -> EntryResult:
    race = defect_payoff(player.u_win, player.p_doom, player.p_win_outside, u_lose=player.u_lose)
    joins = race < player.u_coop
    logger.debug("%s: race payoff %.4f, treaty %.4f", player.name, race, player.u_coop)
    return EntryResult(
        name=player.name,
        race_payoff=race,
        treaty_payoff=player.u_coop,
        joins=joins,
        concession_needed=0.0 if joins else race - player.u_coop,
    )
