"""Checkpoints that carry their own architecture: ``{"config": <plain data>, "state_dict": ..., ...}``.

Everything in a checkpoint is a tensor, a number, a string, a list or a dict, so
``torch.load(path, weights_only=True)`` reads it (no pickled classes), and :func:`load_model` rebuilds
the model from the file alone, never from the current params.yaml. Files are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dc003.io import atomic_path
from dc003.model.config import ModelConfig
from dc003.model.two_tower import TwoTowerModel


def save(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    # through a file handle: torch.save names the zip's root after a path it is given, and the temporary
    # name differs per run, so equal weights gave different bytes (and a new DVC hash) on every run
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a dc003 checkpoint (top level is {type(obj).__name__})")
    return obj


def model_checkpoint(model: TwoTowerModel, **extra: Any) -> dict[str, Any]:
    return {"config": model.config.model_dump(mode="json"), "state_dict": model.state_dict(), **extra}


def save_model(path: str | os.PathLike[str], model: TwoTowerModel, **extra: Any) -> None:
    save(path, model_checkpoint(model, **extra))


def load_model(path: str | os.PathLike[str]) -> tuple[TwoTowerModel, dict[str, Any]]:
    """The model rebuilt from the checkpoint's own config, with its weights; plus the whole checkpoint."""
    ckpt = load(path)
    if "config" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{path}: checkpoint lacks 'config' or 'state_dict'")
    model = TwoTowerModel(ModelConfig.model_validate(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt
