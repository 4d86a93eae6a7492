"""The CLI shell: instant help without heavy imports, clear bad-usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from dc003.cli import app


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from dc003.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('torch', 'great_expectations', 'onnxruntime', 'pandas', 'faiss', 'dvc') "
        "if m in sys.modules]; print(__import__('json').dumps(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []


def test_help_lists_the_command_groups() -> None:
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for group in ("contracts", "params"):
        assert group in res.stdout


def test_bad_usage_is_non_zero_with_a_message() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["contracts", "frobnicate"])
    assert res.exit_code == 2 and "No such command" in res.output
    res = runner.invoke(app, ["params", "check", "--bogus"])
    assert res.exit_code == 2 and "No such option" in res.output
    res = runner.invoke(app, ["params", "check", "--params", "missing.yaml"])
    assert res.exit_code == 1 and res.stderr.strip() == "error: missing.yaml: file not found"
