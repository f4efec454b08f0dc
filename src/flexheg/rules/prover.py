"""Proofs about rulesets: ratchet, baseline rights, equivalence and succession rules.

Each property is proved for every workload the device can be given: every fact within its declared
type and bounds, every optional fact present or missing, and the facts that each workload
descriptor carries present. The translation into SMT lives in :mod:`flexheg.rules._smt`.

Every check follows the same steps:

1. Translate the rulesets (and the baseline condition) into one encoding. A node outside the
   fragment makes the result ``unprovable``.
2. Ask z3 for a workload that violates the property. ``unsat`` proves the property; ``unknown``
   (a timeout) makes it ``unprovable``.
3. On ``sat``, prefer a violating workload with every fact present and no string that merely
   repeats a literal, because it reads more easily.
4. Turn the model into a workload descriptor and the other facts, and re-run the evaluator
   (``Ruleset.decide``) on them. Only a counterexample the evaluator confirms is returned;
   otherwise the result is ``unprovable`` and the disagreement is logged as an error.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from flexheg.errors import InputError, Reason, Rejected
from flexheg.rules._ast import Expr, Value
from flexheg.rules._evaluate import compile_expression
from flexheg.rules._facts import FACTS
from flexheg.rules._parser import parse_expression
from flexheg.rules._ruleset import (
    Decision,
    Ruleset,
    SuccessionKind,
    SuccessionRule,
    parse_workload,
)
from flexheg.rules._smt import Encoding, UntranslatableError, encoding_for
from flexheg.wire import MAX_SAFE_INTEGER

logger = logging.getLogger(__name__)

_Z3_LOCK = threading.Lock()
"""Serialises proofs: every proof uses z3's shared main context, which is not thread-safe."""

DEFAULT_TIMEOUT_MS = 20_000
"""Solver time limit per property. The 50-rule benchmark proves each property in well under 1 s."""


class Verdict(enum.StrEnum):
    PROVED = "proved"
    REFUTED = "refuted"
    UNPROVABLE = "unprovable"


@dataclass(frozen=True)
class Counterexample:
    """A workload that violates a property, confirmed by the evaluator.

    Attributes:
        workload: the workload descriptor, as ``parse_workload`` accepts it.
        facts: the other present facts (``run.flop_total``, ``device.*``, ``location.*``).
        absent: the facts that are missing, descriptor fields included.
        decisions: the evaluator's decision for each ruleset involved, by label (``old``, ``new``).
    """

    workload: dict[str, Any]
    facts: dict[str, Value]
    absent: tuple[str, ...]
    decisions: dict[str, Decision] = field(default_factory=dict)

    def all_facts(self) -> dict[str, Value]:
        """Return the facts that the evaluator reads: the parsed descriptor plus the other facts."""
        return {**parse_workload(self.workload, what="counterexample workload"), **self.facts}

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "facts": {name: list(v) if isinstance(v, tuple) else v for name, v in self.facts.items()},
            "absent": list(self.absent),
            "decisions": {label: d.to_dict() for label, d in self.decisions.items()},
        }


@dataclass(frozen=True)
class PropertyResult:
    """The verdict on one property, with the reason and a counterexample when refuted."""

    name: str
    verdict: Verdict
    detail: str
    counterexample: Counterexample | None = None

    @property
    def proved(self) -> bool:
        return self.verdict is Verdict.PROVED

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
        }


# Steps 2 to 4, shared by every SMT property.

Confirm = Callable[[Mapping[str, Value]], tuple[bool, dict[str, Decision]]]
"""Re-check a candidate with the evaluator: whether it violates the property, and the decisions."""


def _descriptor_value(value: Value) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_SAFE_INTEGER:
        # Canonical JSON carries integers only up to 2**53; parse_workload reads the decimal text.
        return str(value)
    return value


def counterexample_from_facts(facts: Mapping[str, Value], decisions: dict[str, Decision]) -> Counterexample:
    """Split facts into a workload descriptor and the other facts."""
    workload: dict[str, Any] = {}
    other: dict[str, Value] = {}
    for name, value in sorted(facts.items()):
        if name.startswith("workload."):
            workload[name.removeprefix("workload.")] = _descriptor_value(value)
        else:
            other[name] = value
    absent = tuple(sorted(name for name in FACTS if name not in facts))
    return Counterexample(workload, other, absent, decisions)


def _search(
    name: str, build: Callable[[Encoding], Any], encoding: Encoding, confirm: Confirm, timeout_ms: int
) -> PropertyResult:
    # Step 1.
    try:
        violation = build(encoding)
    except UntranslatableError as exc:
        return PropertyResult(name, Verdict.UNPROVABLE, f"a rule is outside the provable fragment: {exc}")

    # Step 2.
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*encoding.domain)
    solver.add(violation)
    outcome = solver.check()
    if outcome == z3.unsat:
        return PropertyResult(name, Verdict.PROVED, "holds for every workload")
    if outcome != z3.sat:
        reason = solver.reason_unknown()
        return PropertyResult(
            name, Verdict.UNPROVABLE, f"the solver returned unknown within {timeout_ms} ms: {reason}"
        )

    # Step 3.
    model = solver.model()
    for preference in encoding.preferences():
        solver.push()
        solver.add(*preference)
        preferred = solver.check() == z3.sat
        if preferred:
            model = solver.model()
        solver.pop()
        if preferred:
            break

    # Step 4.
    facts = encoding.facts_from_model(model)
    candidate = counterexample_from_facts(facts, {})
    try:
        violated, decisions = confirm(candidate.all_facts())
    except InputError as exc:
        logger.error("the %s counterexample %s is not a valid workload: %s", name, facts, exc)
        violated, decisions = False, {}
    if not violated:
        logger.error("the evaluator does not confirm the %s counterexample %s", name, facts)
        return PropertyResult(
            name,
            Verdict.UNPROVABLE,
            "the SMT model and the evaluator disagree on a candidate counterexample",
        )
    counterexample = counterexample_from_facts(facts, decisions)
    return PropertyResult(name, Verdict.REFUTED, _describe(decisions), counterexample)


def _describe(decisions: Mapping[str, Decision]) -> str:
    parts = []
    for label, decision in decisions.items():
        verb = "allows" if decision.allowed else "denies"
        rule = f"rule {decision.rule}" if decision.rule else "default deny"
        parts.append(f"{label} {verb} ({rule})")
    return "; ".join(parts)


# The properties.


def prove_ratchet(old: Ruleset, new: Ruleset, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> PropertyResult:
    """Prove that ``new`` allows every workload that ``old`` allows."""

    def build(encoding: Encoding) -> Any:
        return z3.And(encoding.allowed(old), z3.Not(encoding.allowed(new)))

    def confirm(facts: Mapping[str, Value]) -> tuple[bool, dict[str, Decision]]:
        decisions = {"old": old.decide(facts), "new": new.decide(facts)}
        return decisions["old"].allowed and not decisions["new"].allowed, decisions

    with _Z3_LOCK:
        return _search("ratchet", build, encoding_for([old, new]), confirm, timeout_ms)


def prove_baseline_rights(
    ruleset: Ruleset, condition: str | Expr, *, timeout_ms: int = DEFAULT_TIMEOUT_MS
) -> PropertyResult:
    """Prove that ``ruleset`` allows every workload for which ``condition`` is true.

    Raises:
        InputError: ``condition`` is text that does not parse.
    """
    expr = parse_expression(condition, where="baseline rights") if isinstance(condition, str) else condition
    region = compile_expression(expr)

    def build(encoding: Encoding) -> Any:
        return z3.And(encoding.condition(expr)[0], z3.Not(encoding.allowed(ruleset)))

    def confirm(facts: Mapping[str, Value]) -> tuple[bool, dict[str, Decision]]:
        decision = ruleset.decide(facts)
        return region(facts) is True and not decision.allowed, {"ruleset": decision}

    with _Z3_LOCK:
        return _search("baseline-rights", build, encoding_for([ruleset], [expr]), confirm, timeout_ms)


def prove_equivalent(
    first: Ruleset,
    second: Ruleset,
    *,
    labels: tuple[str, str] = ("first", "second"),
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
) -> PropertyResult:
    """Prove that two rulesets allow exactly the same workloads (the deciding rules may differ).

    ``labels`` name the two rulesets in the counterexample's decisions.
    """

    def build(encoding: Encoding) -> Any:
        return encoding.allowed(first) != encoding.allowed(second)

    def confirm(facts: Mapping[str, Value]) -> tuple[bool, dict[str, Decision]]:
        first_decision, second_decision = first.decide(facts), second.decide(facts)
        decisions = {labels[0]: first_decision, labels[1]: second_decision}
        return first_decision.allowed != second_decision.allowed, decisions

    with _Z3_LOCK:
        return _search("equivalence", build, encoding_for([first, second]), confirm, timeout_ms)


# Succession rules.


@dataclass(frozen=True)
class SuccessionCheck:
    """The verdict on one succession rule of the old ruleset, applied to the new one."""

    rule: SuccessionRule
    verdict: Verdict
    detail: str
    counterexample: Counterexample | None = None

    @property
    def kind(self) -> SuccessionKind:
        return self.rule.kind

    @property
    def proved(self) -> bool:
        return self.verdict is Verdict.PROVED

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.to_dict(),
            "kind": self.kind.value,
            "device_checked": self.kind.device_checked,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
        }


@dataclass(frozen=True)
class SuccessionReport:
    """Every succession rule of the old ruleset with its verdict on the new one.

    ``dropped`` lists the old succession rules that the new ruleset no longer carries, so they
    bind no later ruleset. That is allowed, but an approver should see it.
    """

    checks: tuple[SuccessionCheck, ...]
    dropped: tuple[SuccessionRule, ...] = ()

    @property
    def ok(self) -> bool:
        return all(check.proved for check in self.checks)

    @property
    def violations(self) -> list[SuccessionCheck]:
        return [check for check in self.checks if not check.proved]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [check.to_dict() for check in self.checks],
            "dropped": [rule.to_dict() for rule in self.dropped],
        }


def check_succession(
    old: Ruleset, new: Ruleset, *, new_lifetime: int | None, timeout_ms: int = DEFAULT_TIMEOUT_MS
) -> SuccessionReport:
    """Check ``new`` against every succession rule of ``old``.

    ``new_lifetime`` is the lifetime of the update carrying ``new`` in seconds; None (a bare rules
    file) makes a ``max-lifetime`` rule unprovable.
    """
    checks = tuple(_check_one(rule, old, new, new_lifetime, timeout_ms) for rule in old.succession)
    dropped = tuple(rule for rule in old.succession if rule not in new.succession)
    for check in checks:
        logger.debug("succession rule %s: %s", check.kind.value, check.verdict.value)
    return SuccessionReport(checks, dropped)


def verify_succession(old: Ruleset, new: Ruleset, *, new_lifetime: int | None) -> SuccessionReport:
    """Check succession like :func:`check_succession` and raise unless every rule is proved.

    Raises:
        Rejected: ``succession-rule-violated``, naming the first rule that is not proved.
    """
    report = check_succession(old, new, new_lifetime=new_lifetime)
    violations = report.violations
    if violations:
        first = violations[0]
        raise Rejected(
            Reason.SUCCESSION_RULE_VIOLATED,
            f"{len(violations)} of {len(report.checks)} succession rules are not proved; "
            f"first: {first.kind.value}: {first.detail}",
            expected=f"{first.kind.value} proved",
            actual=first.verdict.value,
        )
    return report


def _check_one(
    rule: SuccessionRule, old: Ruleset, new: Ruleset, new_lifetime: int | None, timeout_ms: int
) -> SuccessionCheck:
    if rule.kind is SuccessionKind.MAX_LIFETIME:
        return _check_lifetime(rule, new_lifetime)
    if rule.kind is SuccessionKind.KEEP_RULE:
        return _check_keep_rule(rule, old, new)
    if rule.kind in (SuccessionKind.CAP_NOT_LOWER, SuccessionKind.CAP_NOT_HIGHER):
        return _check_cap(rule, old, new)
    if rule.kind is SuccessionKind.RATCHET:
        result = prove_ratchet(old, new, timeout_ms=timeout_ms)
    else:
        result = prove_baseline_rights(new, rule.when, timeout_ms=timeout_ms)
    return SuccessionCheck(rule, result.verdict, result.detail, result.counterexample)


def _check_lifetime(rule: SuccessionRule, new_lifetime: int | None) -> SuccessionCheck:
    if new_lifetime is None:
        return SuccessionCheck(
            rule, Verdict.UNPROVABLE, "the new ruleset carries no lifetime; check the update file instead"
        )
    if new_lifetime > rule.seconds:
        return SuccessionCheck(
            rule, Verdict.REFUTED, f"lifetime {new_lifetime} s is above the maximum {rule.seconds} s"
        )
    return SuccessionCheck(rule, Verdict.PROVED, f"lifetime {new_lifetime} s is within {rule.seconds} s")


def _check_keep_rule(rule: SuccessionRule, old: Ruleset, new: Ruleset) -> SuccessionCheck:
    kept = old.rule(rule.rule)
    successor = new.rule(rule.rule)
    if kept is None:
        return SuccessionCheck(rule, Verdict.UNPROVABLE, f"the old ruleset has no rule {rule.rule!r}")
    if successor is None:
        return SuccessionCheck(rule, Verdict.REFUTED, f"the new ruleset drops rule {rule.rule!r}")
    if successor != kept:
        changed = [
            name for name in ("effect", "when", "reason") if getattr(successor, name) != getattr(kept, name)
        ]
        return SuccessionCheck(rule, Verdict.REFUTED, f"rule {rule.rule!r} changed its {', '.join(changed)}")
    detail = f"rule {rule.rule!r} is kept verbatim"
    if successor.expr != kept.expr:
        # The text is the same but a cap it names changed value; cap succession rules govern that.
        detail += f"; its meaning changed with {', '.join(_changed_caps(kept.when, old, new))}"
    return SuccessionCheck(rule, Verdict.PROVED, detail)


def _changed_caps(when: str, old: Ruleset, new: Ruleset) -> list[str]:
    changed = []
    for name, value in sorted(old.caps.items()):
        if name not in new.caps or new.caps[name] == value:
            continue
        swapped = {**old.caps, name: new.caps[name]}
        if parse_expression(when, caps=swapped) != parse_expression(when, caps=old.caps):
            changed.append(f"caps.{name} ({value} to {new.caps[name]})")
    return changed


def _check_cap(rule: SuccessionRule, old: Ruleset, new: Ruleset) -> SuccessionCheck:
    before = old.caps.get(rule.cap)
    after = new.caps.get(rule.cap)
    if before is None:
        return SuccessionCheck(rule, Verdict.UNPROVABLE, f"the old ruleset has no cap {rule.cap!r}")
    if after is None:
        return SuccessionCheck(rule, Verdict.REFUTED, f"the new ruleset drops cap {rule.cap!r}")
    lower = rule.kind is SuccessionKind.CAP_NOT_LOWER
    if (after < before) if lower else (after > before):
        direction = "lowers" if lower else "raises"
        return SuccessionCheck(
            rule, Verdict.REFUTED, f"the new ruleset {direction} cap {rule.cap!r} from {before} to {after}"
        )
    return SuccessionCheck(rule, Verdict.PROVED, f"cap {rule.cap!r} goes from {before} to {after}")
