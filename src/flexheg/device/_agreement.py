"""The agreement: the root of trust a manufacturer writes into every device at assembly."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from flexheg.errors import InputError
from flexheg.policy import Action, Approver, Policy, check_approver_set
from flexheg.rules import Ruleset
from flexheg.wire import MAX_SAFE_INTEGER, Fields, PublicKey, Statement
from flexheg.wire.checkpoint import NoteVerifier


class AgreementKind(enum.StrEnum):
    """Verification-based agreements only attest; ruleset-based agreements also enforce rules."""

    VERIFICATION = "verification"
    RULESET = "ruleset"


@dataclass(frozen=True)
class NamedKeys:
    """A party identified by name with its public keys (licensing states, witnesses)."""

    id: str
    keys: tuple[PublicKey, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "keys": [k.to_dict() for k in self.keys]}

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> NamedKeys:
        fields = Fields(value, where)
        party_id = fields.str("id")
        keys = tuple(
            PublicKey.from_dict(item, where=f"{fields.path('keys')}[{index}]")
            for index, item in enumerate(fields.list("keys"))
        )
        fields.done()
        if not keys:
            raise InputError(f"{where}: {party_id!r} has no keys")
        return cls(party_id, keys)


@dataclass(frozen=True)
class LogConfig:
    """The transparency log a device trusts, its witnesses and the witness quorum.

    Keys are C2SP verifier keys (``name+keyid+base64``): the log's note-signing key and each
    witness's cosignature key. With a log configured, a device accepts an install or extension
    only with a proof bundle showing that the subject and every approval are in the log.
    """

    origin: str
    key: str
    witnesses: tuple[str, ...]
    quorum: int

    def log_verifier(self) -> NoteVerifier:
        return NoteVerifier.from_vkey(self.key, what="log key")

    def witness_verifiers(self) -> list[NoteVerifier]:
        return [NoteVerifier.from_vkey(w, what="witness key") for w in self.witnesses]

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "key": self.key,
            "witnesses": list(self.witnesses),
            "quorum": self.quorum,
        }

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> LogConfig:
        fields = Fields(value, where)
        config = cls(
            origin=fields.str("origin"),
            key=fields.str("key"),
            witnesses=tuple(fields.str_list("witnesses")),
            quorum=fields.int("quorum", minimum=1),
        )
        fields.done()
        NoteVerifier.from_vkey(config.key, what=fields.path("key"))
        verifiers = config.witness_verifiers()
        if config.quorum > len(verifiers):
            raise InputError(
                f"{where}.quorum: {config.quorum} witnesses required but only {len(verifiers)} configured"
            )
        return config


@dataclass(frozen=True)
class Agreement(Statement):
    """Approvers, policies, the manufacturer keys, the baseline ruleset and the limits.

    ``max_lifetime`` caps an update's lifetime; ``max_extension`` caps the total time that
    extensions may add to one update. Without a baseline ruleset the device locks down when its
    update expires. ``extra`` holds optional sections (landmarks, regions) read by other parts.
    """

    TYPE = "flexheg.dev/agreement/v1"

    name: str
    kind: AgreementKind
    approvers: tuple[Approver, ...]
    policies: dict[Action, Policy]
    manufacturers: tuple[PublicKey, ...]
    baseline: Ruleset | None
    max_lifetime: int
    max_extension: int
    licensing_states: tuple[NamedKeys, ...] = ()
    log: LogConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def policy(self, action: Action) -> Policy:
        return self.policies[action]

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind.value,
            "approvers": [a.to_dict() for a in self.approvers],
            "policies": {action.value: p.to_dict() for action, p in sorted(self.policies.items())},
            "manufacturers": [k.to_dict() for k in self.manufacturers],
            "baseline": self.baseline.to_dict() if self.baseline is not None else None,
            "max_lifetime": self.max_lifetime,
            "max_extension": self.max_extension,
            "licensing_states": [s.to_dict() for s in self.licensing_states],
            "log": self.log.to_dict() if self.log is not None else None,
        }
        if self.extra:
            body["extra"] = self.extra
        return body

    @classmethod
    def from_fields(cls, fields: Fields) -> Self:
        name = fields.str("name")
        kind_text = fields.str("kind")
        try:
            kind = AgreementKind(kind_text)
        except ValueError:
            raise InputError(f"{fields.path('kind')}: {kind_text!r} is not ruleset or verification") from None
        approvers = tuple(
            Approver.from_dict(item, where=f"{fields.path('approvers')}[{index}]")
            for index, item in enumerate(fields.list("approvers"))
        )
        check_approver_set(approvers, where=fields.path("approvers"))
        policy_fields = fields.object("policies")
        policies = {
            action: Policy.from_dict(policy_fields.raw(action.value), where=policy_fields.path(action.value))
            for action in Action
        }
        policy_fields.done()
        manufacturers = tuple(
            PublicKey.from_dict(item, where=f"{fields.path('manufacturers')}[{index}]")
            for index, item in enumerate(fields.list("manufacturers"))
        )
        if not manufacturers:
            raise InputError(f"{fields.path('manufacturers')}: at least one manufacturer key is required")
        raw_baseline = fields.optional_raw("baseline")
        baseline = (
            None if raw_baseline is None else Ruleset.from_dict(raw_baseline, where=fields.path("baseline"))
        )
        raw_log = fields.optional_raw("log")
        agreement = cls(
            name=name,
            kind=kind,
            approvers=approvers,
            policies=policies,
            manufacturers=manufacturers,
            baseline=baseline,
            max_lifetime=fields.int("max_lifetime", minimum=1, maximum=MAX_SAFE_INTEGER),
            max_extension=fields.int("max_extension", minimum=0, maximum=MAX_SAFE_INTEGER),
            licensing_states=tuple(
                NamedKeys.from_dict(item, where=f"{fields.path('licensing_states')}[{index}]")
                for index, item in enumerate(fields.list("licensing_states"))
            ),
            log=None if raw_log is None else LogConfig.from_dict(raw_log, where=fields.path("log")),
            extra=dict(fields.object("extra")._value) if fields.has("extra") else {},
        )
        fields.done()
        _check_policies(agreement.approvers, agreement.policies, where=fields.path("policies"))
        return agreement


def _check_policies(approvers: Sequence[Approver], policies: dict[Action, Policy], *, where: str) -> None:
    total = sum(a.votes for a in approvers)
    for action, policy in policies.items():
        if policy.kind == "weighted" and policy.threshold > total:
            raise InputError(
                f"{where}.{action.value}: threshold {policy.threshold} exceeds the {total} votes in the "
                "agreement, so nothing could ever be approved"
            )
