"""Checkpoints that carry their own architecture: ``{"config": <plain data>, "state_dict": ..., ...}``.

Everything in a checkpoint is a tensor, a number, a string, a list or a dict, so
``torch.load(path, weights_only=True)`` reads it (no pickled classes), and :func:`load_model` rebuilds
the model from the file alone, never from the current params.yaml. Files are written atomically.

A file the weights-only loader refuses (it holds pickled Python objects: loading it the unsafe way could run
arbitrary code) or cannot read (truncated, empty, not a checkpoint) raises :class:`CheckpointError`, one
line naming the file; never a traceback ending in PyTorch's advice to retry with ``weights_only=False``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from dc003.errors import Dc003Error, exception_summary
from dc003.io import atomic_path
from dc003.model.config import ModelConfig
from dc003.model.two_tower import TwoTowerModel


def save(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    # through a file handle: torch.save names the zip's root after a path it is given, and the temporary
    # name differs per run, so equal weights gave different bytes (and a new DVC hash) on every run
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


class CheckpointError(Dc003Error):
    """A checkpoint file that cannot be used; ``unsafe``: the weights-only loader refused its contents."""

    def __init__(self, message: str, *, unsafe: bool = False) -> None:
        super().__init__(message)
        self.unsafe = unsafe


_REWRITE = "delete it and re-run the stage that writes it"


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found: run the stage that writes it")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise CheckpointError(
                f"{p}: torch.load(weights_only=True) refused it: it holds pickled Python objects besides "
                f"tensors and plain data (a dc003 checkpoint never does), so it may be unsafe to load "
                f"(weights_only=False could run arbitrary code); {_REWRITE}",
                unsafe=True,
            ) from None
        raise CheckpointError(f"{p}: unreadable checkpoint ({exception_summary(exc)}); {_REWRITE}") from None
    except (
        Exception
    ) as exc:  # torch reports a truncated or foreign file as RuntimeError / EOFError / KeyError
        raise CheckpointError(
            f"{p}: unreadable checkpoint, truncated or corrupted ({exception_summary(exc)}); {_REWRITE}"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p}: not a dc003 checkpoint (top level is {type(obj).__name__}); {_REWRITE}")
    return obj


def model_checkpoint(model: TwoTowerModel, **extra: Any) -> dict[str, Any]:
    return {"config": model.config.model_dump(mode="json"), "state_dict": model.state_dict(), **extra}


def save_model(path: str | os.PathLike[str], model: TwoTowerModel, **extra: Any) -> None:
    save(path, model_checkpoint(model, **extra))


def load_model(path: str | os.PathLike[str]) -> tuple[TwoTowerModel, dict[str, Any]]:
    """The model rebuilt from the checkpoint's own config, with its weights; plus the whole checkpoint."""
    ckpt = load(path)
    if "config" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path}: not a dc003 model checkpoint (no 'config' or 'state_dict'); {_REWRITE}"
        )
    model = TwoTowerModel(ModelConfig.model_validate(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt
