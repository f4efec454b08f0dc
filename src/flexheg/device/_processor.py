"""The guarantee processor as a pure state machine.

Every operation takes the current state, its input bytes and the device time ``now`` (a tick),
and returns a new state with a result, or raises :class:`~flexheg.errors.Rejected` and leaves the
state untouched. Nothing here reads files, sockets or clocks; :class:`flexheg.device.Device`
does that around these functions.

Invariants that every operation keeps (the property tests check them):

* ``highest_version`` never decreases, and no update with a version at or below it is installed.
* An update is active only while ``now < not_after``; once it has expired, nothing revives it.
* ``not_after`` of an update never moves back, and extensions add at most ``max_extension``.
* Per-run metered compute only grows.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flexheg.device._power import append_power_event, power_log_head
from flexheg.device._state import DeviceState, Installed, Mode, RunAccount
from flexheg.device._statements import ApproverSetChange, Evidence, LifetimeExtension
from flexheg.errors import InputError, Reason, Rejected
from flexheg.policy import Action, Approver, PolicyResult, evaluate, require, verify_approvals
from flexheg.rules import Decision, Ruleset, RulesetUpdate, SuccessionKind
from flexheg.wire import Envelope, SigningKey, parse_statement, sha256_digest
from flexheg.wire.checkpoint import Checkpoint, verify_log_bundle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstallResult:
    version: int
    digest: str
    not_after: int
    approvals: PolicyResult


@dataclass(frozen=True)
class ExtendResult:
    version: int
    serial: int
    not_after: int
    approvals: PolicyResult


@dataclass(frozen=True)
class AdmitResult:
    """An admission decision. ``reason_code`` is set on denial: ``workload-denied`` or a location code."""

    decision: Decision
    run_id: str
    flop_total: int
    mode: Mode
    reason_code: str | None = None

    def __post_init__(self) -> None:
        if not self.decision.allowed and self.reason_code is None:
            object.__setattr__(self, "reason_code", Reason.WORKLOAD_DENIED.value)


def _check_enabled(state: DeviceState | None) -> DeviceState:
    if state is None:
        raise Rejected(
            Reason.DEVICE_DISABLED,
            "the device is disabled: its keys were erased after a tamper response",
            expected="an enabled device",
            actual="disabled",
        )
    return state


def mode_at(state: DeviceState, now: int) -> Mode:
    """Return whether the installed update, the baseline, or nothing governs the device."""
    if state.installed is not None and now < state.installed.not_after:
        return Mode.ACTIVE
    if state.agreement.baseline is not None:
        return Mode.BASELINE
    return Mode.LOCKDOWN


def active_ruleset(state: DeviceState, now: int) -> Ruleset | None:
    mode = mode_at(state, now)
    if mode is Mode.ACTIVE:
        assert state.installed is not None
        return state.installed.update.ruleset
    if mode is Mode.BASELINE:
        return state.agreement.baseline
    return None


def _bump(state: DeviceState, counter: str) -> dict[str, int]:
    counters = dict(state.counters)
    counters[counter] = counters.get(counter, 0) + 1
    return counters


def _parse_subject(payload: bytes, cls: type[Any], what: str) -> Any:
    try:
        return parse_statement(payload, cls, what=what)
    except InputError as exc:
        raise Rejected(Reason.MALFORMED, str(exc)) from None


def _check_approvals(
    state: DeviceState,
    approvals: Sequence[Envelope],
    *,
    action: Action,
    subject: str,
    now: int,
) -> PolicyResult:
    """Verify approvals against the current approver set and require the action's policy."""
    approvers = state.current_approvers
    verified = verify_approvals(
        approvals, approvers, agreement=state.agreement_digest, action=action, subject=subject
    )
    result = evaluate(state.agreement.policy(action), approvers, verified, action=action, now=now)
    require(result, action=action)
    return result


def check_logged(
    state: DeviceState, payload: bytes, approvals: Sequence[Envelope], log_bundle: bytes | None
) -> str | None:
    """Check that the subject and every approval are logged; return the newest checkpoint seen.

    Without a log in the agreement there is nothing to check and the stored checkpoint stays.
    """
    config = state.agreement.log
    if config is None:
        return state.checkpoint
    if log_bundle is None:
        raise Rejected(
            Reason.NOT_LOGGED,
            "the agreement requires every update, extension and approval to be in the transparency log",
            expected=f"a proof bundle from {config.origin}",
            actual="no proof bundle",
        )
    newest_seen = None if state.checkpoint is None else Checkpoint.parse(state.checkpoint)
    newest = verify_log_bundle(
        log_bundle,
        entries=[payload, *(envelope.to_json() for envelope in approvals)],
        log_key=config.log_verifier(),
        witnesses=config.witness_verifiers(),
        quorum=config.quorum,
        newest_seen=newest_seen,
    )
    if newest.origin != config.origin:
        raise Rejected(
            Reason.NOT_LOGGED,
            "the proof bundle is from another log",
            expected=config.origin,
            actual=newest.origin,
        )
    return newest.to_bytes().decode("utf-8")


def check_succession(previous: RulesetUpdate, update: RulesetUpdate, *, now: int | None = None) -> None:
    """Check the succession rules of ``previous`` that are cheap enough for the device.

    With ``now``, a max-lifetime rule also bounds the time from ``now`` to the update's expiry, so
    that an update dated in the future cannot outlive it. Ratchet and baseline-rights rules need a
    prover; approvers check them before signing, so they are not checked here.
    """
    lifetime = update.lifetime if now is None else max(update.lifetime, update.not_after - now)
    for rule in previous.ruleset.succession:
        if rule.kind is SuccessionKind.MAX_LIFETIME and lifetime > rule.seconds:
            raise Rejected(
                Reason.SUCCESSION_RULE_VIOLATED,
                f"version {previous.version} limits successors' lifetime",
                expected=f"lifetime <= {rule.seconds} s",
                actual=f"{lifetime} s",
            )
        if rule.kind is SuccessionKind.KEEP_RULE:
            kept = previous.ruleset.rule(rule.rule)
            if kept is None or update.ruleset.rule(rule.rule) != kept:
                raise Rejected(
                    Reason.SUCCESSION_RULE_VIOLATED,
                    f"version {previous.version} requires rule {rule.rule!r} to be kept verbatim",
                    expected=f"rule {rule.rule!r} unchanged",
                    actual="changed or removed",
                )
        if rule.kind in (SuccessionKind.CAP_NOT_LOWER, SuccessionKind.CAP_NOT_HIGHER):
            old_value = previous.ruleset.caps[rule.cap]
            new_value = update.ruleset.caps.get(rule.cap)
            lower = rule.kind is SuccessionKind.CAP_NOT_LOWER
            if new_value is None or (new_value < old_value if lower else new_value > old_value):
                bound = ">=" if lower else "<="
                raise Rejected(
                    Reason.SUCCESSION_RULE_VIOLATED,
                    f"version {previous.version} requires cap {rule.cap!r} {bound} {old_value}",
                    expected=f"{rule.cap} {bound} {old_value}",
                    actual="missing" if new_value is None else str(new_value),
                )


def install(
    state: DeviceState | None,
    payload: bytes,
    approvals: Sequence[Envelope],
    now: int,
    *,
    log_bundle: bytes | None = None,
) -> tuple[DeviceState, InstallResult]:
    """Install a ruleset update.

    Steps:
      1. the device is enabled (``device-disabled``);
      2. the update parses (``malformed``) and names this agreement (``wrong-agreement``);
      3. its approvals verify and satisfy the install policy (``malformed``, ``wrong-agreement``,
         ``digest-mismatch``, ``unknown-signer``, ``bad-signature``, ``insufficient-approvals``),
         and, when the agreement names a log, the update and its approvals are in the log under a
         witnessed checkpoint consistent with the newest one seen (``not-logged``, ``bad-proof``,
         ``witness-quorum-not-met``, ``inconsistent-log``);
      4. its version is above every version ever installed (``rollback``);
      5. it has not expired (``expired``), and neither its lifetime nor its remaining time from
         now exceeds the agreement's maximum lifetime (``succession-rule-violated``);
      6. it satisfies the previous update's device-checked succession rules
         (``succession-rule-violated``).
    """
    # Step 1.
    state = _check_enabled(state)

    # Step 2.
    update: RulesetUpdate = _parse_subject(payload, RulesetUpdate, "update")
    digest = sha256_digest(payload)
    if update.agreement != state.agreement_digest:
        raise Rejected(
            Reason.WRONG_AGREEMENT,
            "the update is for another agreement",
            expected=state.agreement_digest,
            actual=update.agreement,
        )

    # Step 3.
    result = _check_approvals(state, approvals, action=Action.INSTALL, subject=digest, now=now)
    checkpoint = check_logged(state, payload, approvals, log_bundle)

    # Step 4.
    if update.version <= state.highest_version:
        raise Rejected(
            Reason.ROLLBACK,
            f"version {update.version} is not newer than version {state.highest_version}",
            expected=f"version > {state.highest_version}",
            actual=f"version {update.version}",
        )

    # Step 5.
    if now >= update.not_after:
        raise Rejected(
            Reason.EXPIRED,
            f"version {update.version} expired before it was installed",
            expected=f"device time < {update.not_after}",
            actual=f"device time {now}",
        )
    if update.lifetime > state.agreement.max_lifetime:
        raise Rejected(
            Reason.SUCCESSION_RULE_VIOLATED,
            "the update's lifetime exceeds the agreement's maximum lifetime",
            expected=f"lifetime <= {state.agreement.max_lifetime} s",
            actual=f"{update.lifetime} s",
        )
    if update.not_after - now > state.agreement.max_lifetime:
        # An update dated in the future would otherwise stay active for longer than the maximum
        # lifetime from the moment it is installed.
        raise Rejected(
            Reason.SUCCESSION_RULE_VIOLATED,
            f"version {update.version} is issued in the future and would outlive the agreement's "
            "maximum lifetime from now",
            expected=f"not_after <= {now + state.agreement.max_lifetime}",
            actual=f"not_after {update.not_after}",
        )

    # Step 6.
    if state.installed is not None:
        check_succession(state.installed.update, update, now=now)

    installed = Installed(payload, update, digest, update.not_after)
    new_state = dataclasses.replace(
        state,
        installed=installed,
        highest_version=update.version,
        checkpoint=checkpoint,
        counters=_bump(state, "installs"),
        clock_high_water=max(state.clock_high_water, now),
    )
    logger.debug("installed ruleset version %d (%s)", update.version, digest)
    return new_state, InstallResult(update.version, digest, update.not_after, result)


def extend(
    state: DeviceState | None,
    payload: bytes,
    approvals: Sequence[Envelope],
    now: int,
    *,
    log_bundle: bytes | None = None,
) -> tuple[DeviceState, ExtendResult]:
    """Extend the lifetime of the installed update.

    Steps:
      1. the device is enabled (``device-disabled``);
      2. the extension parses (``malformed``) and names this agreement (``wrong-agreement``);
      3. its approvals verify and satisfy the extend policy, and are logged when the agreement
         names a log (as for :func:`install`);
      4. it is bound to the installed update's digest and version (``extension-mismatch``);
      5. the installed update has not expired (``expired``);
      6. its serial is above the last one accepted, and it moves expiry forward (``rollback``);
      7. the total extension stays within the agreement's cap (``extension-exceeds-cap``).
    """
    # Step 1.
    state = _check_enabled(state)

    # Step 2.
    extension: LifetimeExtension = _parse_subject(payload, LifetimeExtension, "extension")
    digest = sha256_digest(payload)
    if extension.agreement != state.agreement_digest:
        raise Rejected(
            Reason.WRONG_AGREEMENT,
            "the extension is for another agreement",
            expected=state.agreement_digest,
            actual=extension.agreement,
        )

    # Step 3.
    result = _check_approvals(state, approvals, action=Action.EXTEND, subject=digest, now=now)
    checkpoint = check_logged(state, payload, approvals, log_bundle)

    # Step 4.
    installed = state.installed
    if installed is None or extension.update != installed.digest:
        raise Rejected(
            Reason.EXTENSION_MISMATCH,
            "the extension is bound to an update that is not installed",
            expected=installed.digest if installed else "an installed update",
            actual=extension.update,
        )
    if extension.version != installed.update.version:
        raise Rejected(
            Reason.EXTENSION_MISMATCH,
            "the extension names another version than the update it is bound to",
            expected=f"version {installed.update.version}",
            actual=f"version {extension.version}",
        )

    # Step 5.
    if now >= installed.not_after:
        raise Rejected(
            Reason.EXPIRED,
            f"version {installed.update.version} has expired; an expired update cannot be extended",
            expected=f"device time < {installed.not_after}",
            actual=f"device time {now}",
        )

    # Step 6.
    if extension.serial <= installed.extension_serial:
        raise Rejected(
            Reason.ROLLBACK,
            f"extension serial {extension.serial} was already superseded",
            expected=f"serial > {installed.extension_serial}",
            actual=f"serial {extension.serial}",
        )
    if extension.not_after <= installed.not_after:
        raise Rejected(
            Reason.ROLLBACK,
            "the extension does not move the expiry forward",
            expected=f"not_after > {installed.not_after}",
            actual=f"not_after {extension.not_after}",
        )

    # Step 7.
    extended_by = extension.not_after - installed.update.not_after
    if extended_by > state.agreement.max_extension:
        raise Rejected(
            Reason.EXTENSION_EXCEEDS_CAP,
            f"the extension would add {extended_by} s to version {installed.update.version}",
            expected=f"at most {state.agreement.max_extension} s in total",
            actual=f"{extended_by} s",
        )

    new_installed = dataclasses.replace(
        installed, not_after=extension.not_after, extension_serial=extension.serial, extended_by=extended_by
    )
    new_state = dataclasses.replace(
        state,
        installed=new_installed,
        checkpoint=checkpoint,
        counters=_bump(state, "extensions"),
        clock_high_water=max(state.clock_high_water, now),
    )
    logger.debug(
        "extended version %d to %d (serial %d)", extension.version, extension.not_after, extension.serial
    )
    return new_state, ExtendResult(extension.version, extension.serial, extension.not_after, result)


@dataclass(frozen=True)
class ChangeResult:
    epoch: int
    approvers: tuple[str, ...]
    old_set: PolicyResult
    new_set: PolicyResult


def _merged(old: Sequence[Approver], new: Sequence[Approver]) -> list[Approver]:
    """Return one approver per id holding the keys of both sets, for signature checks only."""
    merged: dict[str, Approver] = {a.id: a for a in old}
    for approver in new:
        known = merged.get(approver.id)
        if known is None:
            merged[approver.id] = approver
        else:
            extra = tuple(k for k in approver.keys if k not in known.keys)
            merged[approver.id] = dataclasses.replace(known, keys=known.keys + extra)
    return list(merged.values())


def change_approvers(
    state: DeviceState | None,
    payload: bytes,
    approvals: Sequence[Envelope],
    now: int,
    *,
    log_bundle: bytes | None = None,
) -> tuple[DeviceState, ChangeResult]:
    """Replace the approver set.

    Steps:
      1. the device is enabled (``device-disabled``);
      2. the change parses (``malformed``) and names this agreement (``wrong-agreement``);
      3. its epoch is exactly one above the current one (``rollback``);
      4. its approvals verify against the old and the new keys, and the change-approvers policy
         holds for the old set and for the new set (``insufficient-approvals`` and the codes of
         :func:`flexheg.policy.verify_approvals`); when the agreement names a log, the change and
         its approvals are logged.
    """
    # Step 1.
    state = _check_enabled(state)

    # Step 2.
    change: ApproverSetChange = _parse_subject(payload, ApproverSetChange, "approver-set change")
    if change.agreement != state.agreement_digest:
        raise Rejected(
            Reason.WRONG_AGREEMENT,
            "the approver-set change is for another agreement",
            expected=state.agreement_digest,
            actual=change.agreement,
        )

    # Step 3.
    if change.epoch != state.approver_epoch + 1:
        raise Rejected(
            Reason.ROLLBACK,
            f"approver-set epoch {change.epoch} does not follow the current epoch {state.approver_epoch}",
            expected=f"epoch {state.approver_epoch + 1}",
            actual=f"epoch {change.epoch}",
        )

    # Step 4.
    old, new = state.current_approvers, change.approvers
    digest = sha256_digest(payload)
    verified = verify_approvals(
        approvals,
        _merged(old, new),
        agreement=state.agreement_digest,
        action=Action.CHANGE_APPROVERS,
        subject=digest,
    )
    policy = state.agreement.policy(Action.CHANGE_APPROVERS)
    old_result = evaluate(policy, old, verified, action=Action.CHANGE_APPROVERS, now=now)
    require(old_result, action=Action.CHANGE_APPROVERS)
    new_result = evaluate(policy, new, verified, action=Action.CHANGE_APPROVERS, now=now)
    require(new_result, action=Action.CHANGE_APPROVERS)
    checkpoint = check_logged(state, payload, approvals, log_bundle)

    new_state = dataclasses.replace(
        state,
        approvers=new,
        approver_epoch=change.epoch,
        checkpoint=checkpoint,
        clock_high_water=max(state.clock_high_water, now),
    )
    logger.debug("approver set changed to epoch %d: %s", change.epoch, ", ".join(a.id for a in new))
    return new_state, ChangeResult(change.epoch, tuple(a.id for a in new), old_result, new_result)


def _decide(
    state: DeviceState, facts: Mapping[str, Any], now: int, extra_facts: Mapping[str, Any]
) -> tuple[Decision, Mode]:
    mode = mode_at(state, now)
    ruleset = active_ruleset(state, now)
    if ruleset is None:
        return Decision(
            False, None, "the device is locked down: no update is active and there is no baseline"
        ), mode
    all_facts = {**facts, **extra_facts, "device.id": state.device_id}
    return ruleset.decide(all_facts), mode


def admit(
    state: DeviceState | None,
    facts: Mapping[str, Any],
    now: int,
    *,
    extra_facts: Mapping[str, Any] | None = None,
) -> tuple[DeviceState, AdmitResult]:
    """Decide whether a workload may start, and charge its declared FLOP to its run if allowed.

    ``facts`` come from :func:`flexheg.rules.parse_workload`; ``extra_facts`` carries device-level
    facts (license, location) computed by the caller. A denial is a result, not an exception:
    the new state counts it.
    """
    state = _check_enabled(state)
    run_id = str(facts["workload.run_id"])
    flop = facts["workload.flop"]
    if not isinstance(flop, int) or isinstance(flop, bool) or flop < 0:
        # A negative charge would lower the run's total, and the sealed state could not store it.
        raise InputError(f"workload.flop must be a non-negative integer, got {flop!r}")
    account = state.runs.get(run_id)
    used = account.flop_used if account is not None else 0
    flop_total = used + flop
    if account is not None and _descriptor(account.facts) != _descriptor(facts):
        # A run keeps the descriptor it was admitted with. Re-admitting a training run as
        # inference would otherwise let metering judge its later steps under another rule.
        decision = Decision(
            False, None, f"run {run_id!r} was admitted with another descriptor; a run keeps its descriptor"
        )
        return dataclasses.replace(
            state, counters=_bump(state, "denied"), clock_high_water=max(state.clock_high_water, now)
        ), AdmitResult(decision, run_id, used, mode_at(state, now))
    decision, mode = _decide(state, {**facts, "run.flop_total": flop_total}, now, extra_facts or {})
    runs = dict(state.runs)
    if decision.allowed:
        runs[run_id] = RunAccount(flop_total, dict(facts))
    counter = "admitted" if decision.allowed else "denied"
    new_state = dataclasses.replace(
        state, runs=runs, counters=_bump(state, counter), clock_high_water=max(state.clock_high_water, now)
    )
    return new_state, AdmitResult(decision, run_id, flop_total if decision.allowed else used, mode)


def _descriptor(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Return a run's identifying facts: every workload fact except this request's FLOP."""
    return {name: value for name, value in facts.items() if name != "workload.flop"}


def meter(
    state: DeviceState | None,
    run_id: str,
    flop: int,
    now: int,
    *,
    extra_facts: Mapping[str, Any] | None = None,
) -> tuple[DeviceState, AdmitResult]:
    """Charge metered FLOP of one step to an admitted run, re-checking the active rules.

    The step is judged with the facts the run was admitted with, ``workload.flop`` set to the
    step's FLOP and ``run.flop_total`` to the run's total including the step, so a cap applies to
    the whole run. A denied step is not charged.
    """
    state = _check_enabled(state)
    account = state.runs.get(run_id)
    if account is None:
        raise Rejected(
            Reason.WORKLOAD_DENIED,
            f"run {run_id!r} was never admitted on this device",
            expected="an admitted run",
            actual=run_id,
        )
    if flop < 0:
        raise InputError(f"metered FLOP must not be negative, got {flop}")
    flop_total = account.flop_used + flop
    facts = {**account.facts, "workload.flop": flop, "run.flop_total": flop_total}
    decision, mode = _decide(state, facts, now, extra_facts or {})
    runs = dict(state.runs)
    if decision.allowed:
        runs[run_id] = RunAccount(flop_total, account.facts)
    counters = _bump(state, "metered_steps" if decision.allowed else "denied")
    new_state = dataclasses.replace(
        state, runs=runs, counters=counters, clock_high_water=max(state.clock_high_water, now)
    )
    return new_state, AdmitResult(
        decision, run_id, flop_total if decision.allowed else account.flop_used, mode
    )


def power_event(state: DeviceState | None, event: str, now: int) -> DeviceState:
    """Append a power-on or power-off event to the hash-chained power log."""
    state = _check_enabled(state)
    return dataclasses.replace(
        state,
        power_log=append_power_event(state.power_log, event, now),
        clock_high_water=max(state.clock_high_water, now),
    )


def attest(
    state: DeviceState | None,
    identity_key: SigningKey,
    nonce: str,
    now: int,
    *,
    license_claims: dict[str, Any] | None = None,
    location_claims: dict[str, Any] | None = None,
) -> tuple[DeviceState, Envelope]:
    """Sign evidence of the device's state, bound to the verifier's ``nonce``."""
    state = _check_enabled(state)
    if not nonce or len(nonce) > 256:
        raise InputError("the nonce must be 1 to 256 characters; use 32 random bytes in hex")
    mode = mode_at(state, now)
    installed = state.installed
    evidence = Evidence(
        device_id=state.device_id,
        nonce=nonce,
        time=now,
        agreement=state.agreement_digest,
        mode=mode.value,
        ruleset_version=installed.update.version if installed and mode is Mode.ACTIVE else 0,
        ruleset_digest=installed.digest if installed and mode is Mode.ACTIVE else None,
        not_after=installed.not_after if installed else None,
        extension_serial=installed.extension_serial if installed else 0,
        counters=_bump(state, "attestations"),
        power_log_head=power_log_head(state.power_log),
        power_log_count=len(state.power_log),
        checkpoint=state.checkpoint,
        license=license_claims,
        location=location_claims,
    )
    new_state = dataclasses.replace(
        state, counters=evidence.counters, clock_high_water=max(state.clock_high_water, now)
    )
    return new_state, Envelope.sign(evidence, identity_key)
