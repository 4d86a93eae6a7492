"""The shell every `python -m pipeline.<stage>` runs in: one clear line and exit 1 on a Dc003Error."""

from __future__ import annotations

import sys
from collections.abc import Callable

from dc003.errors import Dc003Error


def run_stage(name: str, main: Callable[[], object]) -> None:
    try:
        main()
    except Dc003Error as exc:
        for line in str(exc).splitlines() or ["failed"]:
            print(f"error: stage {name}: {line}", file=sys.stderr)
        sys.exit(exc.exit_code)
