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

from dc003.errors import Dc003Error
from dc003.io import read_json

if TYPE_CHECKING:
    from dc003.model.config import ModelConfig
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


_ONLY_ADDS = "an update only adds articles (a catalogue that lost some needs the full pipeline, `dvc repro`)"
_CATALOGUE_BUFFERS = ("item_tokens", "item_residuals", "item_attributes")  # refilled from the catalogue


def _model_categoricals(config: ModelConfig) -> list[str]:
    ut, it = config.user_tower, config.item_tower
    return sorted({c.name for c in [*ut.categorical, *it.categorical, *ut.sequence.item_attributes]})


def fit_catalogue(
    model: TwoTowerModel, dataset_dir: Path, warm_start: Path, mappings_file: Path | None, seed: int
) -> TwoTowerModel:
    """The warm-started model for the dataset's catalogue and vocabularies.

    Every categorical the model reads must map each value to the index the warm start was trained with
    (its embedding rows): the dataset's ``vocab.json`` is checked against ``mappings_file``; an unseen
    value is index 0 (unknown) in both. A catalogue that grew (every article of the warm start still
    there, rows are positions in the catalogue sorted by ``article_id``) gets a model built for the new
    size that carries every trained weight over; the per-catalogue buffers are refilled by the caller
    (``set_item_attributes``) and by evaluation / export (``set_item_tokens``). With
    ``model.history_item_id`` the id embedding's rows move to the articles' new positions and the new
    articles' rows start as a fresh model's (seeded). A catalogue that lost articles is refused."""
    import pyarrow.parquet as pq
    import torch

    from dc003.exported import load_mappings
    from dc003.model.two_tower import TwoTowerModel

    n_old = model.config.n_items
    items_file, vocab_file = dataset_dir / "items.parquet", dataset_dir / "vocab.json"
    articles = [str(a) for a in pq.read_table(items_file, columns=["article_id"]).column(0).to_pylist()]
    if len(articles) < n_old:
        raise Dc003Error(
            f"{items_file}: {len(articles)} articles, but the warm start {warm_start} was built for {n_old}: "
            f"{_ONLY_ADDS}"
        )
    if mappings_file is None or not mappings_file.is_file():
        if len(articles) == n_old:
            return model  # nothing to compare the vocabularies with (a warm start passed without its export)
        raise Dc003Error(
            f"{items_file}: {len(articles)} articles, the warm start {warm_start} {n_old}, and no "
            f"embedding_mappings.json exported with it ({mappings_file}): its catalogue and vocabularies "
            "are unknown, so the grown catalogue needs the full pipeline (`dvc repro`)"
        )
    warm = load_mappings(mappings_file)  # format 2 (header + id tables) or 1 (an older export's JSON)
    vocab = read_json(vocab_file)
    for name in _model_categoricals(model.config):
        now = {str(v): i for i, v in enumerate(vocab.get(name, {}).get("values", [])) if v is not None}
        before = warm.categorical.get(name, {})
        if now != before:
            diff = sorted(set(now.items()) ^ set(before.items()))[0][0]
            raise Dc003Error(
                f"{vocab_file}: {name}: value -> index differs from the warm start's ({mappings_file}; e.g. "
                f"{diff!r}: {now.get(diff, 0)} now, {before.get(diff, 0)} then): the model's embedding rows "
                "are the warm start's indices, so a changed vocabulary needs the full pipeline (`dvc repro`)"
            )
    old_rows = dict(warm.articles.items())
    if len(old_rows) != n_old:
        raise Dc003Error(
            f"{mappings_file}: {len(old_rows)} articles, but the warm start {warm_start} was built for "
            f"{n_old}: not the mappings exported with this model"
        )
    position = {a: i for i, a in enumerate(articles)}
    lost = [a for a in old_rows if a not in position]
    if lost:
        raise Dc003Error(
            f"{items_file}: {len(lost)} article(s) of the warm start are missing (e.g. article_id "
            f"{lost[0]}): {_ONLY_ADDS}"
        )
    if len(articles) == n_old:
        return model
    n_new = len(articles)
    seq = model.config.user_tower.sequence.model_copy(update={"n_items": n_new})
    ut = model.config.user_tower.model_copy(update={"sequence": seq})
    config = model.config.model_copy(update={"n_items": n_new, "user_tower": ut})
    torch.manual_seed(seed)
    grown = TwoTowerModel(config)
    state = grown.state_dict()
    old_state = model.state_dict()
    # the catalogue's rows: per-catalogue buffers start empty (refilled), id embedding rows move
    old_idx = torch.tensor([old_rows[a] for a in old_rows] + [n_old])
    new_idx = torch.tensor([position[a] for a in old_rows] + [n_new])
    for key, value in old_state.items():
        if state[key].shape == value.shape:
            state[key] = value
        elif key.endswith("item_embedding.weight"):
            state[key][new_idx] = value[old_idx]
        elif key.rsplit(".", 1)[-1] not in _CATALOGUE_BUFFERS:
            raise ValueError(
                f"{key}: shape {tuple(value.shape)} -> {tuple(state[key].shape)} with the catalogue"
            )
    grown.load_state_dict(state)
    return grown


def run_update_training(
    seed: int,
    params: UpdateParams,
    paths: PhasePaths,
    *,
    warm_start: Path,
    since_day: int,
    dc002_path: Path,
    warm_mappings: Path | None = None,
    progress: bool = True,
) -> PhaseRun:
    """Fine-tune the model of ``warm_start`` on the update's rows; writes ``paths.out_dir`` (the phase
    directory: model.pt, summary.json, history.json = the warm start's history + this step).
    ``warm_mappings``: the ``embedding_mappings.json`` exported with the warm start (its catalogue and
    vocabularies; see :func:`fit_catalogue`)."""
    import torch

    from dc003.contracts import load_dc002
    from dc003.model import checkpoint
    from dc003.text.embed import load_item_text
    from dc003.train.data import load_training_data
    from dc003.train.objectives import InfoNceObjective
    from dc003.train.recipes import InBatchRecipe
    from dc003.train.run import in_batch_log_q, run_phase

    frozen: list[Any] = []

    def load() -> tuple[TwoTowerModel, TrainingData]:
        model, _ = checkpoint.load_model(warm_start)
        model = fit_catalogue(model, paths.dataset_dir, warm_start, warm_mappings, seed)
        data = load_training_data(
            paths.dataset_dir, load_item_text(paths.text_dir), model.config, load_dc002(dc002_path)
        )
        model.user_tower.history.set_item_attributes(torch.from_numpy(data.item_attributes))
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
            history_dropout=params.history_dropout,
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
