"""Run the validation for the stage / the CLI: write summary.json and the Data Docs, print every failure
as one line, and fail (Dc003Error) when an error-severity rule is broken."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from dc003.data.dirs import atomic_dir
from dc003.errors import Dc003Error
from dc003.io import write_json

SUMMARY_JSON = "summary.json"
DATA_DOCS = "data_docs"


def check_dataset(dataset_dir: Path, docs_dir: Path | None = None) -> dict[str, Any]:
    """Validate with the repository's contracts; ``docs_dir`` receives the Data Docs when given."""
    from dc003.contracts import load_dc002, load_dc003
    from dc003.data.validation.run import validate_dataset

    return validate_dataset(dataset_dir, load_dc002(), load_dc003(), docs_dir=docs_dir)


def raise_on_errors(summary: dict[str, Any]) -> None:
    from dc003.data.validation.run import failure_lines

    lines = failure_lines(summary)
    for line in lines:
        if not line.startswith("error:"):
            print(line, file=sys.stderr)
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error:")]
    if errors:
        n = summary["counts"]["errors"]
        raise Dc003Error("\n".join([*errors, f"{n} contract breach(es); see the summary and Data Docs"]))


def validate_to(dataset_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The validate stage: summary.json (also on failure, so the breach can be read) + Data Docs."""
    with atomic_dir(out_dir / DATA_DOCS) as docs:
        summary = check_dataset(dataset_dir, docs)
    # the seconds go to the log: phase_1 depends on summary.json, which must not change with the clock
    t = summary.pop("timing_seconds")
    write_json(out_dir / SUMMARY_JSON, summary)
    c = summary["counts"]
    print(
        f"validate: {c['rules']} rules on {c['frames']} frames: {c['errors']} error(s), "
        f"{c['warnings']} warning(s); "
        f"pandera {t['pandera']} s, great_expectations {t['great_expectations']} s -> {out_dir}"
    )
    raise_on_errors(summary)
    return summary
