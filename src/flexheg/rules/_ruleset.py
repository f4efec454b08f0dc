"""Rules, rulesets, admission decisions, succession rules and ruleset updates.

Decision semantics (fail closed, deterministic, total):

1. A ``deny`` rule whose condition is true, or cannot be evaluated because a fact is missing,
   denies the workload. The first such rule in ruleset order decides.
2. Otherwise the first ``allow`` rule whose condition is true allows it. A missing fact never
   allows.
3. Otherwise the workload is denied by default.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Self

from flexheg.errors import InputError
from flexheg.rules._ast import Expr
from flexheg.rules._codegen import compile_ruleset
from flexheg.rules._evaluate import ERROR, Compiled, Facts, compile_expression
from flexheg.rules._facts import FACTS, MAX_FLOP, WORKLOAD_KINDS, FactType
from flexheg.rules._parser import parse_expression
from flexheg.wire import MAX_SAFE_INTEGER, Fields, Statement

MAX_RULES = 1000
_ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class Effect(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True)
class Rule:
    """One rule: an id, an effect, a CEL condition (``when``) and a reason for people."""

    id: str
    effect: Effect
    when: str
    reason: str
    expr: Expr = field(compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "effect": self.effect.value, "when": self.when, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of an admission check: allowed or not, which rule decided and why."""

    allowed: bool
    rule: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "rule": self.rule, "reason": self.reason}


_DEFAULT_DENY = Decision(False, None, "no rule allows this workload")


class SuccessionKind(enum.StrEnum):
    """Kinds of rules about future rules. The first four are cheap enough for the device."""

    MAX_LIFETIME = "max-lifetime"
    KEEP_RULE = "keep-rule"
    CAP_NOT_LOWER = "cap-not-lower"
    CAP_NOT_HIGHER = "cap-not-higher"
    RATCHET = "ratchet"
    BASELINE_RIGHTS = "baseline-rights"

    @property
    def device_checked(self) -> bool:
        return self not in (SuccessionKind.RATCHET, SuccessionKind.BASELINE_RIGHTS)


@dataclass(frozen=True)
class SuccessionRule:
    """A rule that every successor of this ruleset must satisfy.

    ``max-lifetime`` (``seconds``): successors live at most this long.
    ``keep-rule`` (``rule``): successors contain this rule verbatim.
    ``cap-not-lower`` / ``cap-not-higher`` (``cap``): successors keep the cap and never lower
    (raise) its value.
    ``ratchet``: every workload this ruleset allows stays allowed (proved by approvers).
    ``baseline-rights`` (``when``): every workload satisfying the condition is allowed (proved by
    approvers).
    """

    kind: SuccessionKind
    seconds: int = 0
    rule: str = ""
    cap: str = ""
    when: str = ""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"kind": self.kind.value}
        if self.kind is SuccessionKind.MAX_LIFETIME:
            result["seconds"] = self.seconds
        elif self.kind is SuccessionKind.KEEP_RULE:
            result["rule"] = self.rule
        elif self.kind in (SuccessionKind.CAP_NOT_LOWER, SuccessionKind.CAP_NOT_HIGHER):
            result["cap"] = self.cap
        elif self.kind is SuccessionKind.BASELINE_RIGHTS:
            result["when"] = self.when
        return result

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> SuccessionRule:
        fields = Fields(value, where)
        text = fields.str("kind")
        try:
            kind = SuccessionKind(text)
        except ValueError:
            choices = ", ".join(k.value for k in SuccessionKind)
            raise InputError(
                f"{where}.kind: unknown succession rule {text!r}; expected one of {choices}"
            ) from None
        rule = cls(kind)
        if kind is SuccessionKind.MAX_LIFETIME:
            rule = cls(kind, seconds=fields.int("seconds", minimum=1, maximum=MAX_SAFE_INTEGER))
        elif kind is SuccessionKind.KEEP_RULE:
            rule = cls(kind, rule=fields.str("rule"))
        elif kind in (SuccessionKind.CAP_NOT_LOWER, SuccessionKind.CAP_NOT_HIGHER):
            rule = cls(kind, cap=fields.str("cap"))
        elif kind is SuccessionKind.BASELINE_RIGHTS:
            when = fields.str("when")
            parse_expression(when, where=fields.path("when"))
            rule = cls(kind, when=when)
        fields.done()
        return rule


class Ruleset:
    """A parsed, compiled ruleset: rules, named integer caps and succession rules."""

    def __init__(
        self,
        rules: Sequence[Rule],
        caps: Mapping[str, int] | None = None,
        succession: Sequence[SuccessionRule] = (),
    ) -> None:
        self.rules = tuple(rules)
        self.caps = dict(caps or {})
        self.succession = tuple(succession)
        self._compiled = False

    def _compile(self) -> None:
        """Compile both evaluators on first use, so that installing an update only parses it."""
        self._deny: list[tuple[str, str, Compiled]] = []
        self._allow: list[tuple[str, str, Compiled]] = []
        for rule in self.rules:
            target = self._deny if rule.effect is Effect.DENY else self._allow
            target.append((rule.id, rule.reason, compile_expression(rule.expr)))
        ordered = [r for r in self.rules if r.effect is Effect.DENY]
        ordered += [r for r in self.rules if r.effect is Effect.ALLOW]
        self._needed, self._fast = compile_ruleset([r.expr for r in ordered])
        self._fast_decisions = [
            Decision(rule.effect is Effect.ALLOW, rule.id, rule.reason) for rule in ordered
        ]
        self._compiled = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ruleset) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(r.id for r in self.rules))

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def decide(self, facts: Facts) -> Decision:
        """Decide whether the workload described by ``facts`` may run."""
        if not self._compiled:
            self._compile()
        if self._needed.issubset(facts.keys()):
            index = self._fast(facts)
            return self._fast_decisions[index] if index >= 0 else _DEFAULT_DENY
        return self.decide_slow(facts)

    def decide_slow(self, facts: Facts) -> Decision:
        """Decide with the three-valued evaluator, which handles missing facts."""
        if not self._compiled:
            self._compile()
        for rule_id, reason, condition in self._deny:
            value = condition(facts)
            if value is True:
                return Decision(False, rule_id, reason)
            if value is ERROR:
                return Decision(False, rule_id, f"{reason} (a fact the rule needs is missing)")
        for rule_id, reason, condition in self._allow:
            if condition(facts) is True:
                return Decision(True, rule_id, reason)
        return _DEFAULT_DENY

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": [r.to_dict() for r in self.rules],
            "caps": {name: str(value) for name, value in sorted(self.caps.items())},
            "succession": [s.to_dict() for s in self.succession],
        }

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> Ruleset:
        fields = Fields(value, where)
        caps_fields = fields.object("caps")
        caps: dict[str, int] = {}
        for name in list(caps_fields._value):
            _check_id(name, f"{fields.path('caps')} name")
            caps[name] = caps_fields.big_int(name)
        caps_fields.done()
        raw_rules = fields.list("rules")
        if len(raw_rules) > MAX_RULES:
            raise InputError(f"{where}: {len(raw_rules)} rules; the maximum is {MAX_RULES}")
        rules = [
            parse_rule(item, caps=caps, where=f"{fields.path('rules')}[{index}]")
            for index, item in enumerate(raw_rules)
        ]
        succession = [
            SuccessionRule.from_dict(item, where=f"{fields.path('succession')}[{index}]")
            for index, item in enumerate(fields.list("succession"))
        ]
        fields.done()
        return build_ruleset(rules, caps, succession, where=where)


def _check_id(value: str, what: str) -> None:
    if not _ID_RE.fullmatch(value):
        raise InputError(
            f"{what}: {value!r} is not a valid id; use 1-64 lowercase letters, digits, '_', '-', '.'"
        )


def parse_rule(value: object, *, caps: Mapping[str, int], where: str) -> Rule:
    fields = Fields(value, where)
    rule_id = fields.str("id")
    _check_id(rule_id, fields.path("id"))
    effect_text = fields.str("effect")
    if effect_text not in ("allow", "deny"):
        raise InputError(f"{fields.path('effect')}: {effect_text!r} is invalid; use allow or deny")
    when = fields.str("when")
    reason = fields.str("reason")
    fields.done()
    key = (when, tuple(sorted(caps.items())))
    expr = _PARSED.get(key)
    if expr is None:
        expr = parse_expression(when, caps=caps, where=f"{where} ({rule_id})")
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = expr
    return Rule(rule_id, Effect(effect_text), when, reason, expr)


# Parsed conditions by (source, caps). Trees are immutable and parsing is a pure function of the
# key, so a device that installs an update whose rules are mostly unchanged parses only the new
# ones. Only successful parses are stored; errors are raised with their location every time.
_PARSED: dict[tuple[str, tuple[tuple[str, int], ...]], Expr] = {}
_PARSED_MAX = 4096


def clear_parse_cache() -> None:
    """Forget every parsed condition (benchmarks use this to measure cold parsing)."""
    _PARSED.clear()


def build_ruleset(
    rules: Sequence[Rule],
    caps: Mapping[str, int],
    succession: Sequence[SuccessionRule],
    *,
    where: str,
) -> Ruleset:
    """Check cross-references (unique rule ids, known caps and rules) and build a Ruleset."""
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise InputError(f"{where}: rule id {rule.id!r} appears twice")
        seen.add(rule.id)
    for succession_rule in succession:
        if succession_rule.kind is SuccessionKind.KEEP_RULE and succession_rule.rule not in seen:
            raise InputError(f"{where}: succession rule keeps unknown rule {succession_rule.rule!r}")
        if succession_rule.cap and succession_rule.cap not in caps:
            raise InputError(f"{where}: succession rule names unknown cap {succession_rule.cap!r}")
    return Ruleset(rules, caps, succession)


@dataclass(frozen=True)
class RulesetUpdate(Statement):
    """A ruleset update: the rules a device runs from install until ``not_after``."""

    TYPE = "flexheg.dev/ruleset-update/v1"

    agreement: str
    version: int
    issued_at: int
    lifetime: int
    ruleset: Ruleset
    description: str = ""

    @property
    def not_after(self) -> int:
        return self.issued_at + self.lifetime

    def body(self) -> dict[str, Any]:
        return {
            "agreement": self.agreement,
            "version": self.version,
            "issued_at": self.issued_at,
            "lifetime": self.lifetime,
            "ruleset": self.ruleset.to_dict(),
            "description": self.description,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        update = cls(
            agreement=fields.digest("agreement"),
            version=fields.int("version", minimum=1, maximum=MAX_SAFE_INTEGER),
            issued_at=fields.int("issued_at", minimum=0, maximum=MAX_SAFE_INTEGER),
            lifetime=fields.int("lifetime", minimum=1, maximum=MAX_SAFE_INTEGER),
            ruleset=Ruleset.from_dict(fields.raw("ruleset"), where=fields.path("ruleset")),
            description=fields.str("description", non_empty=False),
        )
        fields.done()
        return update


def parse_number_text(value: object, *, what: str) -> int:
    """Parse an exact non-negative integer given as an int or as text such as ``"1e25"``."""
    if isinstance(value, bool):
        raise InputError(f"{what}: expected a number, got {value!r}")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.replace("_", ""))
        except InvalidOperation:
            raise InputError(f"{what}: {value!r} is not a number; write e.g. 1e25 or 4096") from None
    else:
        raise InputError(f'{what}: expected an integer or a string such as "1e25", got {value!r}')
    if not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise InputError(f"{what}: {value!r} is not a non-negative integer")
    if number > MAX_FLOP:
        raise InputError(f"{what}: {value!r} is above the maximum 1e32")
    return int(number)


def load_rules_file(path: Path) -> Ruleset:
    """Load a TOML rules file: ``[caps]``, ``[[rule]]`` tables and ``[[succession]]`` tables."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read rules file: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: invalid TOML: {exc}") from None
    unknown = set(document) - {"caps", "rule", "succession"}
    if unknown:
        raise InputError(f"{path}: unknown table(s) {sorted(unknown)}; expected caps, rule, succession")
    caps_table = document.get("caps", {})
    if not isinstance(caps_table, dict):
        raise InputError(f"{path}: [caps] must be a table of name = number")
    caps = {}
    for name, value in caps_table.items():
        _check_id(name, f"{path} caps")
        caps[name] = parse_number_text(value, what=f"{path} caps.{name}")
    rules = [
        parse_rule(item, caps=caps, where=f"{path} rule {index + 1}")
        for index, item in enumerate(document.get("rule", []))
    ]
    succession = [
        SuccessionRule.from_dict(item, where=f"{path} succession {index + 1}")
        for index, item in enumerate(document.get("succession", []))
    ]
    return build_ruleset(rules, caps, succession, where=str(path))


_WORKLOAD_FIELDS = {
    "kind": "workload.kind",
    "run_id": "workload.run_id",
    "flop": "workload.flop",
    "cluster_size": "workload.cluster_size",
    "interconnect_gbps": "workload.interconnect_gbps",
    "model_digest": "workload.model_digest",
    "evals_passed": "workload.evals_passed",
}


def parse_workload(value: object, *, what: str) -> dict[str, Any]:
    """Validate a workload descriptor and return its facts (``workload.*`` names).

    ``kind``, ``run_id``, ``flop`` and ``cluster_size`` are required; ``flop`` may be an integer
    or a decimal/scientific string such as ``"3e24"``.
    """
    if not isinstance(value, dict):
        raise InputError(f"{what}: a workload descriptor must be a JSON object")
    unknown = sorted(set(value) - set(_WORKLOAD_FIELDS))
    if unknown:
        raise InputError(f"{what}: unknown field(s) {unknown}; known fields: {', '.join(_WORKLOAD_FIELDS)}")
    for required in ("kind", "run_id", "flop", "cluster_size"):
        if required not in value:
            raise InputError(f"{what}: missing required field {required!r}")
    facts: dict[str, Any] = {}
    for key, item in value.items():
        name = _WORKLOAD_FIELDS[key]
        spec = FACTS[name]
        where = f"{what}.{key}"
        if spec.type is FactType.INT:
            number = parse_number_text(item, what=where)
            if not spec.minimum <= number <= spec.maximum:
                raise InputError(f"{where}: {number} is outside {spec.minimum}..{spec.maximum}")
            facts[name] = number
        elif spec.type is FactType.STRING:
            if not isinstance(item, str) or not item:
                raise InputError(f"{where}: expected a non-empty string, got {item!r}")
            if spec.choices and item not in spec.choices:
                raise InputError(f"{where}: {item!r} is not one of {', '.join(WORKLOAD_KINDS)}")
            facts[name] = item
        else:
            if not isinstance(item, list) or not all(isinstance(s, str) for s in item):
                raise InputError(f"{where}: expected a list of strings")
            facts[name] = tuple(item)
    return facts
