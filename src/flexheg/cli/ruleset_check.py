"""``flexheg ruleset check``: prove the properties an approver needs before signing a ruleset.

The command checks NEW against every succession rule of OLD (max-lifetime, keep-rule, cap rules,
ratchet, baseline rights), proves each ``--baseline-rights`` condition on NEW, and reports
whether NEW is a ratchet of OLD and equivalent to it. Required properties decide the exit code:
0 when all are proved, 1 when one is refuted or unprovable (reason ``succession-rule-violated``).
The ratchet and equivalence lines are for information unless OLD requires a ratchet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from json import dumps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from flexheg.cli._files import read_bytes
from flexheg.cli._output import EXIT_REJECTED, JsonOption, emit, handle_errors
from flexheg.errors import InputError, Reason
from flexheg.rules import Ruleset, RulesetUpdate, SuccessionKind, load_rules_file
from flexheg.wire import Envelope, loads_strict, parse_statement_dict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedRuleset:
    """A ruleset read from a file, with the update's version and lifetime when the file has them."""

    path: Path
    ruleset: Ruleset
    version: int | None = None
    lifetime: int | None = None
    agreement: str | None = None


def load_ruleset(path: Path) -> LoadedRuleset:
    """Read a TOML rules file, a ruleset-update statement file, or a DSSE envelope holding one.

    Envelope signatures are not verified: the check concerns what the rules do, and approving or
    installing the update verifies the signatures.

    Raises:
        InputError: the file is missing, unreadable, or none of the three forms.
    """
    if path.suffix == ".toml":
        return LoadedRuleset(path, load_rules_file(path))
    document = loads_strict(read_bytes(path, what="ruleset update"), what=str(path))
    if isinstance(document, dict) and "payloadType" in document:
        update = Envelope.from_dict(document, what=str(path)).statement(RulesetUpdate, what=str(path))
    elif isinstance(document, dict) and "type" in document:
        update = parse_statement_dict(document, RulesetUpdate, what=str(path))
    else:
        raise InputError(
            f"{path}: expected a TOML rules file (.toml), a ruleset-update statement or a DSSE envelope"
        )
    return LoadedRuleset(path, update.ruleset, update.version, update.lifetime, update.agreement)


def _update_properties(new: LoadedRuleset, old: LoadedRuleset) -> list[dict[str, Any]]:
    """Return the version-order and agreement properties when both files are updates."""
    if new.version is None or old.version is None:
        return []
    version_ok = new.version > old.version
    same_agreement = new.agreement == old.agreement
    return [
        {
            "name": "version order",
            "required": True,
            "verdict": "proved" if version_ok else "refuted",
            "detail": f"version {new.version} after version {old.version}",
            "counterexample": None,
        },
        {
            "name": "same agreement",
            "required": True,
            "verdict": "proved" if same_agreement else "refuted",
            "detail": f"new is for {new.agreement}, old for {old.agreement}",
            "counterexample": None,
        },
    ]


def build_report(new: LoadedRuleset, old: LoadedRuleset, baseline_rights: list[str]) -> dict[str, Any]:
    """Run every check and return the report document that the command prints."""
    from flexheg.rules.prover import (  # noqa: PLC0415 - z3 loads slowly; keep --help fast
        check_succession,
        prove_baseline_rights,
        prove_equivalent,
        prove_ratchet,
    )

    properties = _update_properties(new, old)
    report = check_succession(old.ruleset, new.ruleset, new_lifetime=new.lifetime)
    for check in report.checks:
        entry = check.to_dict()
        entry["name"] = f"succession {check.kind.value}" + _argument(entry["rule"])
        entry["required"] = True
        properties.append(entry)
    for condition in baseline_rights:
        result = prove_baseline_rights(new.ruleset, condition).to_dict()
        result["name"] = f"baseline-rights {condition}"
        result["required"] = True
        properties.append(result)
    if not any(check.kind is SuccessionKind.RATCHET for check in report.checks):
        properties.append({**prove_ratchet(old.ruleset, new.ruleset).to_dict(), "required": False})
    properties.append(
        {**prove_equivalent(old.ruleset, new.ruleset, labels=("old", "new")).to_dict(), "required": False}
    )

    ok = all(p["verdict"] == "proved" for p in properties if p["required"])
    document: dict[str, Any] = {
        "ok": ok,
        "new": str(new.path),
        "against": str(old.path),
        "properties": properties,
        "dropped_succession_rules": [rule.to_dict() for rule in report.dropped],
    }
    if not ok:
        document["reason"] = Reason.SUCCESSION_RULE_VIOLATED.value
    return document


def _argument(rule: dict[str, Any]) -> str:
    values = [str(value) for key, value in rule.items() if key != "kind"]
    return f" {values[0]}" if values else ""


def _render(document: dict[str, Any]) -> Table:
    table = Table(title=f"{document['new']} against {document['against']}", show_lines=True)
    table.add_column("property")
    table.add_column("verdict")
    table.add_column("detail and counterexample", overflow="fold")
    colours = {"proved": "green", "refuted": "red", "unprovable": "yellow"}
    for entry in document["properties"]:
        verdict = entry["verdict"]
        label = f"[{colours[verdict]}]{verdict}[/{colours[verdict]}]"
        if not entry["required"]:
            label += " (info)"
        detail = entry["detail"]
        counterexample = entry.get("counterexample")
        if counterexample:
            detail += f"\nworkload: {dumps(counterexample['workload'])}"
            detail += f"\nother facts: {dumps(counterexample['facts'])}"
            if counterexample["absent"]:
                detail += f"\nabsent: {', '.join(counterexample['absent'])}"
        table.add_row(entry["name"], label, detail)
    for rule in document["dropped_succession_rules"]:
        table.add_row(f"dropped {rule['kind']}", "note", "the new ruleset no longer carries this rule")
    return table


@handle_errors
def check(
    new: Annotated[
        Path, typer.Argument(help="New ruleset: TOML rules file, update file or signed envelope.")
    ],
    against: Annotated[Path, typer.Option("--against", help="Current ruleset, in any of the same forms.")],
    baseline_rights: Annotated[
        list[str] | None,
        typer.Option("--baseline-rights", help="CEL condition NEW must allow whenever it holds; repeatable."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Prove or refute each property of NEW against OLD, with a counterexample for each refutation."""
    loaded_new = load_ruleset(new)
    loaded_old = load_ruleset(against)
    document = build_report(loaded_new, loaded_old, list(baseline_rights or []))
    emit(document, as_json=json, text=_render(document))
    if not document["ok"]:
        raise typer.Exit(EXIT_REJECTED)
