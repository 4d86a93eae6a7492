"""`dvc plots show` that renders with no network.

DVC 3.67's HTML page loads Vega, Vega-Lite and Vega-Embed from a CDN (dvc_render's VegaRenderer puts
three ``<script src="https://cdn.jsdelivr.net/...">`` tags into the template's ``{scripts}``
placeholder), so offline every Vega plot is blank. The template here has no ``{scripts}`` placeholder,
which drops those tags, and carries the three libraries inline instead: the bundle vl-convert-python
ships (``vl_convert.javascript_bundle``), a classic script that sets ``window.vegaEmbed``, ``vega`` and
``vegaLite``, which is all the plot divs DVC writes call (``vegaEmbed('#id', spec)``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from dc003.errors import Dc003Error

# DVC's linear/scatter/... templates are Vega-Lite v5 specs (DVC itself loads vega-lite@5.2.0): the
# newest v5 that vl-convert bundles compiles them without a version-mismatch warning.
VEGA_LITE_VERSION = "5.21"
# DVC's own scratch directory, git-ignored by the .dvc/.gitignore that `dvc init` writes.
DEFAULT_TEMPLATE = Path(".dvc/tmp/dc003-offline-plots-template.html")
# what the plot divs need as globals (vl-convert's default snippet does the same; its stub wants one)
_SNIPPET = "window.vegaEmbed = vegaEmbed;\nwindow.vega = vega;\nwindow.vegaLite = vegaLite;\n"

# dvc_render fills {refresh_tag} and {plot_divs} by str.replace; {scripts} is left out on purpose.
_PAGE = """<!DOCTYPE html>
<!-- {marker} -->
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <script type="text/javascript">
{bundle}
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""

# a tag that makes the browser fetch something by itself: <script src>, <link href>, <img src>, ...
_EXTERNAL_LOAD = re.compile(
    r"<(?:script|link|img|iframe|embed|source)\b[^>]*?\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//[^\s\"'>]*",
    re.IGNORECASE,
)


def external_loads(html: str) -> list[str]:
    """The tags in ``html`` that load a resource from another host (an empty list when none do)."""
    return _EXTERNAL_LOAD.findall(html)


def _marker() -> str:
    import vl_convert

    return (
        f"dc003 offline plots template: vl-convert-python bundle, vega {vl_convert.get_vega_version()}, "
        f"vega-lite {VEGA_LITE_VERSION}, vega-embed {vl_convert.get_vega_embed_version()}"
    )


def template_html() -> str:
    """The whole template: DVC's page with the three libraries inlined and no ``{scripts}``."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(_SNIPPET, vl_version=VEGA_LITE_VERSION)
    # the bundle goes inside <script>...</script>, then through dvc_render's placeholder replacement
    for forbidden in ("</script", "<!--", "{plot_divs}", "{refresh_tag}", "{scripts}"):
        if forbidden in bundle.lower():
            raise Dc003Error(f"vl_convert.javascript_bundle: contains {forbidden!r}: cannot be inlined")
    return _PAGE.replace("{marker}", _marker()).replace("{bundle}", bundle)


def write_template(path: Path) -> Path:
    """Write the template to ``path`` unless a file there was built from the same library versions."""
    marker = f"<!-- {_marker()} -->"
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            fh.readline()
            if fh.readline().strip() == marker:
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(template_html(), encoding="utf-8")
    tmp.replace(path)
    return path


def show(
    out: Path,
    targets: list[str] | None = None,
    *,
    repo: Path = Path("."),
    template: Path | None = None,
    open_browser: bool = False,
) -> Path:
    """Run ``dvc plots show`` in ``repo`` with the offline template; return the index.html it wrote.

    Fails when DVC reports an error or the page it wrote still loads anything from the network.
    """
    repo = repo.resolve()
    if not (repo / ".dvc").is_dir():
        raise Dc003Error(f"{repo}: not a DVC repository (no .dvc/)")
    tpl = write_template((repo / (template or DEFAULT_TEMPLATE)).resolve())
    out = (repo / out).resolve()
    cmd = [sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(tpl), "-o", str(out)]
    if open_browser:
        cmd.append("--open")
    proc = subprocess.run([*cmd, *(targets or [])], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise Dc003Error(f"dvc plots show: exit {proc.returncode}: {detail[-1] if detail else 'no output'}")
    index = out / "index.html"
    if not index.is_file():
        raise Dc003Error(f"dvc plots show: no plots were loaded, {index} was not written")
    loads = external_loads(index.read_text(encoding="utf-8"))
    if loads:
        raise Dc003Error(f"{index}: still loads from the network: {loads[0]}")
    return index
