"""Resume state of a phase, kept outside the stage's outputs (DVC removes outputs before re-running).

One directory per phase (``data/resume/phase_N``); inside it one subdirectory per input key (a hash of
the input checkpoint, the data, the phase's params and the training code), so a state saved for other
inputs is never used. ``state.pt`` holds the end-of-epoch model, optimiser, scaler and EMA state, the
history so far and the dvclive files; it is written atomically and removed once the phase completes.

A state that cannot be read (truncated by a full disk or a copy, or refused by the weights-only loader) is
only a lost shortcut: it is removed with a warning naming it, and the phase starts from its input again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from dc003.model import checkpoint

STATE_FILE = "state.pt"
# what train_phase reads back from a state (dc003.train.loop)
_STATE_KEYS = frozenset(
    {"model", "optimizer", "scaler", "ema", "grad_stats", "epochs", "epoch", "step", "train_seconds",
     "train_samples", "step_losses_head", "live"}
)  # fmt: skip


def input_key(parts: dict[str, Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def source_digest(*packages: str) -> str:
    """SHA-256 over the Python sources of the given packages (a code change invalidates resume state)."""
    import importlib

    digest = hashlib.sha256()
    for name in packages:
        module = importlib.import_module(name)
        root = Path(module.__file__ or "").parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class ResumeStore:
    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        self.dir = root / key
        self.path = self.dir / STATE_FILE

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            state = checkpoint.load(self.path)
        except checkpoint.CheckpointError as exc:
            self._discard(str(exc).removeprefix(f"{self.path}: ").split("; ")[0])
            return None
        missing = sorted(_STATE_KEYS - set(state))
        if missing:
            self._discard(f"no {', '.join(missing)}")
            return None
        return state

    def _discard(self, reason: str) -> None:
        print(
            f"warning: resume state {self.path} discarded ({reason}); the phase starts from its input again",
            file=sys.stderr,
        )
        self.clear()

    def save(self, state: dict[str, Any]) -> None:
        # states of other input keys are stale from now on
        if self.root.is_dir():
            for other in self.root.iterdir():
                if other != self.dir:
                    shutil.rmtree(other, ignore_errors=True)
        checkpoint.save(self.path, state)

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
