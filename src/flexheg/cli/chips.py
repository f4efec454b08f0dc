"""``flexheg chips``: classify accelerators under export-control threshold rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from flexheg.cli._output import JsonOption, emit, handle_errors
from flexheg.errors import InputError

app = typer.Typer(no_args_is_help=True)


@app.command("classify")
@handle_errors
def classify_command(
    csv_file: Annotated[Path, typer.Argument(help="CSV of chips with datasheet figures.")],
    rule: Annotated[
        list[str] | None,
        typer.Option("--rule", help="Rule id to apply (repeatable); default: every rule."),
    ] = None,
    rules_dir: Annotated[
        Path | None,
        typer.Option("--rules-dir", help="Directory of extra or replacement *.toml rule files."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Print each chip's TPP, performance density and class under each rule version."""
    from flexheg.analysis.chips import classify, load_rules, parse_chips_csv  # noqa: PLC0415

    try:
        text = csv_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {str(csv_file)!r}: {exc.strerror}; check the path") from None
    rows = parse_chips_csv(text)
    rules = load_rules(rules_dir)
    if rule:
        unknown = [name for name in rule if name not in rules]
        if unknown:
            raise InputError(f"unknown rule(s) {', '.join(unknown)}; choose from {', '.join(rules)}")
        rules = {name: rules[name] for name in rule}

    chips: list[dict[str, Any]] = []
    for row in rows:
        chip = row.chip
        chips.append(
            {
                "name": chip.name,
                "line": row.line,
                "tpp": round(chip.tpp, 6),
                "performance_density": round(chip.performance_density, 6),
                "classes": {rule_id: classify(chip, r) for rule_id, r in rules.items()},
            }
        )

    table = Table(title=f"{len(chips)} chip(s)")
    for header in ("chip", "TPP", "PD"):
        table.add_column(header, justify="left" if header == "chip" else "right")
    for rule_id in rules:
        table.add_column(rule_id)
    for entry in chips:
        table.add_row(
            entry["name"],
            f"{entry['tpp']:.1f}",
            f"{entry['performance_density']:.2f}",
            *entry["classes"].values(),
        )
    emit({"ok": True, "rules": list(rules), "chips": chips}, as_json=json, text=table)
