"""`dc003 plots`: DVC's plots page with Vega, Vega-Lite and Vega-Embed inlined, so it renders offline."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dc003.cli import app
from dc003.offline_plots import DEFAULT_TEMPLATE, external_loads, template_html

from .conftest import git


def test_template_inlines_the_libraries_and_loads_nothing() -> None:
    html = template_html()
    # what the plot divs DVC writes call, and what vegaEmbed needs to compile a Vega-Lite spec
    for name in ("window.vegaEmbed=", "window.vega=", "window.vegaLite="):
        assert name in html
    assert external_loads(html) == []
    assert "cdn.jsdelivr.net" not in html
    # dvc_render fills {plot_divs}; {scripts} is where it would put its CDN <script src> tags
    assert html.count("{plot_divs}") == 1 and "{scripts}" not in html


def test_external_loads_flags_dvcs_cdn_tags_and_not_local_images() -> None:
    from dvc_render.vega import VegaRenderer

    assert len(external_loads(VegaRenderer.SCRIPTS)) == 3
    assert external_loads('<link rel="stylesheet" href="//cdn.example/x.css">') != []
    assert external_loads('<img src="static/plots_a.png"> <a href="https://vega.github.io">x</a>') == []


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0\0"))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def tiny_dvc_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git + DVC repo with one Vega plot (a TSV) and one image plot (a PNG)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    (repo / "loss.tsv").write_text("step\tloss\n0\t0.9137\n1\t0.5521\n2\t0.4204\n", encoding="utf-8")
    (repo / "curve.png").write_bytes(_png_1x1())
    (repo / "dvc.yaml").write_text(
        "plots:\n  - loss.tsv:\n      x: step\n      y: loss\n      title: tiny loss\n  - curve.png\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(repo)
    return repo


def test_dc003_plots_writes_a_page_with_no_network_load(tiny_dvc_repo: Path) -> None:
    res = CliRunner().invoke(app, ["plots", "-o", "out"])
    assert res.exit_code == 0, res.output
    index = tiny_dvc_repo / "out" / "index.html"
    assert res.stdout.strip() == index.as_uri()
    html = index.read_text(encoding="utf-8")
    assert external_loads(html) == [] and "cdn.jsdelivr.net" not in html
    # the Vega-Lite spec with the TSV's values, embedded by the inlined vegaEmbed
    assert "vegaEmbed('#" in html and "tiny loss" in html and "0.5521" in html
    assert "window.vegaEmbed=" in html
    # the image plot is a local copy next to the page
    assert '<img src="static/' in html and len(list((index.parent / "static").glob("*.png"))) == 1

    template = tiny_dvc_repo / DEFAULT_TEMPLATE
    assert template.is_file()
    assert git(tiny_dvc_repo, "status", "--porcelain", "--ignored", str(DEFAULT_TEMPLATE)).startswith("!!")
    built = template.stat().st_mtime_ns
    res = CliRunner().invoke(app, ["plots", "-o", "out", "loss.tsv"])
    assert res.exit_code == 0, res.output
    assert template.stat().st_mtime_ns == built  # cached, not rebuilt
    assert "curve.png" not in (tiny_dvc_repo / "out" / "index.html").read_text(encoding="utf-8")


def test_dc003_plots_outside_a_dvc_repo_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["plots"])
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: {tmp_path.resolve()}: not a DVC repository (no .dvc/)"
