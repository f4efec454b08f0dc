"""Benchmark the guarantee processor's two hot paths against their baselines, in one process.

1. Accepting a ruleset update (the pure ``install`` decision: parse, verify approvals, evaluate
   the policy, check version, lifetime and succession rules) against the raw cost of the
   signature checks it needs (one Ed25519 verification per approval, done with ``cryptography``
   on pre-decoded bytes). The ratio is the overhead of everything but the signatures. It is
   reported twice: with every rule condition parsed, and with the conditions already parsed (a
   device keeps parsed conditions, so rules unchanged from the previous update cost nothing).
2. One admission decision on a 20-rule ruleset (median), against a plain Python function that
   tests the same 20 conditions written by hand.

Run: ``python bench/bench_device.py``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flexheg.device import Agreement, AgreementKind, DeviceState, install
from flexheg.device import _processor as processor
from flexheg.device._statements import DeviceCertificate
from flexheg.policy import Action, Approval, Approver, ApproverKey, Policy
from flexheg.rules import Ruleset, RulesetUpdate, parse_rule
from flexheg.rules._ruleset import clear_parse_cache
from flexheg.wire import Envelope, SigningKey, sha256_digest


def _median_seconds(function: Callable[[], object], *, repeat: int, number: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            function()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def _ruleset(count: int) -> Ruleset:
    rules = [
        parse_rule(
            {
                "id": f"cap-{index}",
                "effect": "deny",
                "when": (
                    f'workload.kind == "training" && workload.cluster_size > {1000 + index} '
                    f"&& run.flop_total > {index + 1}e24"
                ),
                "reason": f"cap {index}",
            },
            caps={},
            where="bench",
        )
        for index in range(count - 1)
    ]
    rules.append(
        parse_rule(
            {"id": "default", "effect": "allow", "when": "workload.cluster_size <= 100000", "reason": "ok"},
            caps={},
            where="bench",
        )
    )
    return Ruleset(rules)


def bench_install(rules: int, approvers: int) -> None:
    keys = [SigningKey.generate() for _ in range(approvers)]
    manufacturer = SigningKey.generate()
    agreement = Agreement(
        name="bench",
        kind=AgreementKind.RULESET,
        approvers=tuple(Approver(f"a{i}", 1, (ApproverKey(k.public),)) for i, k in enumerate(keys)),
        policies={a: Policy("all") for a in Action},
        manufacturers=(manufacturer.public,),
        baseline=None,
        max_lifetime=10**9,
        max_extension=10**6,
    )
    payload = agreement.encode()
    digest = sha256_digest(payload)
    now = 1_800_000_000
    certificate = DeviceCertificate("bench", SigningKey.generate().public, "bench", digest, now)
    state = DeviceState("bench", payload, agreement, Envelope.sign(certificate, manufacturer), now)
    state = processor.power_event(state, "power-on", now)
    update = RulesetUpdate(digest, 1, now, 86400 * 30, _ruleset(rules)).encode()
    approvals = [
        Envelope.sign(Approval(digest, Action.INSTALL, sha256_digest(update), f"a{i}", 1, now), key)
        for i, key in enumerate(keys)
    ]

    public = [Ed25519PublicKey.from_public_bytes(bytes.fromhex(k.public.key.keyval["public"])) for k in keys]
    messages = [(e.signatures[0].sig, e.pae()) for e in approvals]

    def raw() -> None:
        for key, (signature, message) in zip(public, messages, strict=True):
            key.verify(signature, message)

    def accept_cold() -> None:
        clear_parse_cache()
        install(state, update, approvals, now)

    def accept_warm() -> None:
        install(state, update, approvals, now)

    raw_s = _median_seconds(raw, repeat=15, number=100)
    cold_s = _median_seconds(accept_cold, repeat=15, number=100)
    warm_s = _median_seconds(accept_warm, repeat=15, number=100)
    print(
        f"install, {approvers} approvals, {rules} rules: raw signature checks {raw_s * 1e6:.1f} us; "
        f"accept with every rule parsed {cold_s * 1e6:.1f} us (ratio {cold_s / raw_s:.2f}); "
        f"accept with rules already parsed {warm_s * 1e6:.1f} us (ratio {warm_s / raw_s:.2f})"
    )


def bench_admit(rules: int) -> None:
    ruleset = _ruleset(rules)
    facts: dict[str, int | str] = {
        "workload.kind": "training",
        "workload.run_id": "r",
        "workload.flop": 10**23,
        "workload.cluster_size": 4096,
        "workload.interconnect_gbps": 400,
        "run.flop_total": 10**23,
        "device.id": "bench",
    }
    bounds = [(1000 + i, (i + 1) * 10**24) for i in range(rules - 1)]

    def handwritten() -> bool:
        training = facts["workload.kind"] == "training"
        cluster_size = int(facts["workload.cluster_size"])
        flop_total = int(facts["run.flop_total"])
        for cluster, flop in bounds:
            if training and cluster_size > cluster and flop_total > flop:
                return False
        return cluster_size <= 100000

    decide_s = _median_seconds(lambda: ruleset.decide(facts), repeat=25, number=2000)
    slow_s = _median_seconds(lambda: ruleset.decide_slow(facts), repeat=25, number=2000)
    hand_s = _median_seconds(handwritten, repeat=25, number=2000)
    print(
        f"admit, {rules} rules: decide {decide_s * 1e6:.2f} us (median), three-valued path "
        f"{slow_s * 1e6:.2f} us, handwritten Python {hand_s * 1e6:.2f} us, ratio {decide_s / hand_s:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=20, help="rules in the benchmark ruleset")
    arguments = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor() or 'cpu'}")
    bench_install(rules=5, approvers=3)
    bench_install(rules=arguments.rules, approvers=3)
    bench_admit(arguments.rules)


if __name__ == "__main__":
    main()
