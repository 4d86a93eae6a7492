"""Gate reports for people: a Rich table for the terminal and Markdown for a pull request."""

from __future__ import annotations

from typing import Any

from dc003.gates.check import GateResult, GatesReport

_MARK = {"pass": "✅ pass", "fail": "❌ fail", "not_applicable": "➖ n/a"}


def observed_text(g: GateResult) -> str:
    value: Any = g.observed
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(report: GatesReport) -> str:
    verdict = "✅ all gates pass" if report.passed else f"❌ {report.counts['fail']} gate(s) fail"
    lines = [
        f"## Promotion gates — {verdict}",
        "",
        f"Contract DC-003 v{report.contract_version}: {report.counts['pass']} pass, "
        f"{report.counts['fail']} fail, {report.counts['not_applicable']} not applicable.",
        "",
        "| gate | group | observed | threshold | result | source |",
        "|---|---|---|---|---|---|",
    ]
    for g in report.gates:
        result = _MARK[g.status] + (f" ({g.reason})" if g.reason else "")
        lines.append(
            f"| `{g.name}` | {g.group} | {observed_text(g)} | {g.threshold} | {result} | `{g.source}` |"
        )
    return "\n".join(lines) + "\n"


def print_table(report: GatesReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"DC-003 v{report.contract_version} gates")
    for col in ("gate", "group", "observed", "threshold", "result", "source"):
        table.add_column(col, overflow="fold")
    style = {"pass": "green", "fail": "red", "not_applicable": "dim"}
    for g in report.gates:
        result = f"[{style[g.status]}]{_MARK[g.status]}[/]" + (f"\n{g.reason}" if g.reason else "")
        table.add_row(g.name, g.group, observed_text(g), g.threshold, result, g.source)
    console = Console()
    console.print(table)
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    console.print(
        f"{verdict}: {report.counts['pass']} pass, {report.counts['fail']} fail, "
        f"{report.counts['not_applicable']} not applicable"
    )
