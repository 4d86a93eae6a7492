"""The incremental update's training step (``dc003 update``; orchestration in :mod:`dc003.update`).

A warm-started model is fine-tuned on the train split's interactions from ``since`` on (plus
``update.window_days`` of replay before it) with phase 2's objective, through the same phase skeleton as
every phase (:func:`dc003.train.run.run_phase`): same loop, validation, resume and phase directory. With
``update.trainable: user_tower`` the item tower is frozen, weights and batch-norm statistics alike, so an
item's embedding changes only where its features did.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dc003.model.two_tower import TwoTowerModel
    from dc003.params.update import UpdateParams
    from dc003.train.data import TrainingData
    from dc003.train.recipes import Recipe
    from dc003.train.run import PhaseInputs, PhasePaths, PhaseRun

PHASE = "update"


def update_rows(data: TrainingData, since_day: int, window_days: int) -> np.ndarray:
    """The interaction rows the update trains on: the train split's, from ``since_day - window_days``."""
    rows = data.rows("train")
    return rows[data.day[rows] >= since_day - window_days]


def freeze(model: TwoTowerModel, trainable: str) -> list[Any]:
    """Freeze what ``trainable`` leaves out: no gradients, and batch norms that keep their running
    statistics in train mode (momentum 0). Returns what :func:`unfreeze` needs to undo it."""
    from torch import nn

    if trainable == "all":
        return []
    frozen = [model.item_tower]
    saved: list[Any] = []
    for module in frozen:
        module.requires_grad_(False)
        for sub in module.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                saved.append((sub, sub.momentum))
                sub.momentum = 0.0
    return [frozen, saved]


def unfreeze(state: list[Any]) -> None:
    if not state:
        return
    frozen, saved = state
    for module in frozen:
        module.requires_grad_(True)
    for sub, momentum in saved:
        sub.momentum = momentum


def run_update_training(
    seed: int,
    params: UpdateParams,
    paths: PhasePaths,
    *,
    warm_start: Path,
    since_day: int,
    dc002_path: Path,
    progress: bool = True,
) -> PhaseRun:
    """Fine-tune the model of ``warm_start`` on the update's rows; writes ``paths.out_dir`` (the phase
    directory: model.pt, summary.json, history.json = the warm start's history + this step)."""
    from dc003.contracts import load_dc002
    from dc003.errors import Dc003Error
    from dc003.model import checkpoint
    from dc003.text.embed import load_item_text
    from dc003.train.data import load_training_data, read_counts
    from dc003.train.objectives import InfoNceObjective
    from dc003.train.recipes import InBatchRecipe
    from dc003.train.run import in_batch_log_q, run_phase

    frozen: list[Any] = []

    def load() -> tuple[TwoTowerModel, TrainingData]:
        model, _ = checkpoint.load_model(warm_start)
        n_items = read_counts(paths.dataset_dir)[1]
        if n_items != model.config.n_items:
            raise Dc003Error(
                f"{paths.dataset_dir / 'items.parquet'}: {n_items} items, but the warm start {warm_start} "
                f"was built for {model.config.n_items}: item rows are positions in the catalogue (sorted by "
                "article_id), so a changed catalogue needs the full pipeline (`dvc repro`), not an update"
            )
        data = load_training_data(
            paths.dataset_dir, load_item_text(paths.text_dir), model.config, load_dc002(dc002_path)
        )
        frozen.extend(freeze(model, params.trainable))
        return model, data

    def recipe(x: PhaseInputs) -> tuple[Recipe, dict[str, Any]]:
        rows = update_rows(x.data, since_day, params.window_days)
        days = np.unique(x.data.day[rows])
        return InBatchRecipe(
            **{**x.recipe_inputs(), "examples": {"train": rows, "val": x.examples["val"]}},
            objective=InfoNceObjective(params.temperature, params.label_smoothing, params.popularity_weight),
            log_q=in_batch_log_q(x.data, rows),
            shared_negatives=params.random_negatives,
            history_weight=params.history_weight,
        ), {
            "update": {
                "warm_start": str(warm_start),
                "since_day": since_day,
                "days": [int(days.min()), int(days.max())] if days.size else [],
                "examples": int(rows.size),
                "users": int(np.unique(x.data.user[rows]).size),
                "trainable": params.trainable,
            }
        }

    run = run_phase(
        PHASE,
        seed,
        params,
        paths,
        load=load,
        recipe=recipe,
        key_inputs=[warm_start, dc002_path],
        progress=progress,
    )
    unfreeze(frozen)
    return run
