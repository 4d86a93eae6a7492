"""The training stages ``phase_1`` ... ``phase_4`` (called by ``pipeline/phase_N.py``).

Phase 1 builds the model from the contracts, the ``model`` params and train-split statistics; phases 2-4
rebuild it from the previous phase's checkpoint alone. Each phase writes ``<phases_dir>/phase_N/``:
``model.pt`` (config + weights), ``summary.json`` (this phase) and ``history.json`` (phases 1..N).
Phase 4 also writes the contract's checkpoint artifacts, ``architecture_validation.json`` and
``training_metrics.json``. Under torchrun (params ``train.nproc`` > 1) every rank trains
(:mod:`dc003.train.distributed`) and rank 0 alone writes all of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dc003.io import read_json, sha256_file, write_json

if TYPE_CHECKING:
    import torch

    from dc003.contracts.dc002 import Dc002Contract
    from dc003.contracts.dc003 import Dc003Contract
    from dc003.model.two_tower import TwoTowerModel
    from dc003.params.evaluate import AlsParams
    from dc003.params.full import Params
    from dc003.params.train import (
        ModelParams,
        Phase1Params,
        Phase2Params,
        Phase3Params,
        Phase4Params,
        PhaseParams,
    )
    from dc003.train.data import TrainingData
    from dc003.train.loop import LoopSettings, PhaseResult
    from dc003.train.recipes import Recipe

MODEL_FILE = "model.pt"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.json"
SPEED_FILE = "speed.json"  # in the phase's dvclive directory: device, samples/s, seconds, GPU memory


@dataclass(frozen=True)
class PhasePaths:
    dataset_dir: Path
    text_dir: Path
    out_dir: Path  # <phases_dir>/phase_N
    live_dir: Path  # dvclive directory of the phase
    resume_dir: Path  # kept outside the stage's outputs
    input_dir: Path | None = None  # previous phase's out_dir
    validation: Path | None = None  # the validate stage's summary: training never runs on unvalidated data


def _device() -> torch.device:
    import torch

    from dc003.train.distributed import device as process_device
    from dc003.train.distributed import local_processes

    # the processes of a distributed run share the machine's cores
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // local_processes()))
    device = process_device()
    if device.type == "cpu":
        # bit-for-bit reruns: with several threads, two runs of a phase differed from the first step's
        # loss on (8th digit: threaded reductions), so every re-run changed every hash downstream; at no
        # measurable cost here (phase 1: 3,750 vs 3,860-4,050 samples/s, within run-to-run spread)
        torch.use_deterministic_algorithms(True)
    return device


def _check_validated(path: Path | None) -> None:
    from dc003.errors import Dc003Error

    if path is None:
        return
    if not path.is_file():
        raise Dc003Error(f"{path}: missing: the validate stage must pass before training")
    summary = read_json(path)
    if isinstance(summary, dict) and summary.get("passed") is False:
        raise Dc003Error(f"{path}: passed: the dataset failed validation; training refuses to run")


def _settings(name: str, seed: int, p: PhaseParams, **extra: Any) -> LoopSettings:
    from dc003.train.loop import LoopSettings

    return LoopSettings(
        phase=name,
        seed=seed,
        epochs=p.epochs,
        batch_size=p.batch_size,
        learning_rate=p.learning_rate,
        weight_decay=p.weight_decay,
        gradient_clipping=p.gradient_clipping,
        mixed_precision=p.mixed_precision,
        scheduler=p.scheduler,
        examples_per_epoch=p.examples_per_epoch,
        val_max_users=p.val_max_users,
        **extra,
    )


def _resume_key(name: str, seed: int, section: Any, inputs: list[Path]) -> str:
    from dc003.train.resume import input_key, source_digest

    return input_key(
        {
            "phase": name,
            "seed": seed,
            "params": section.model_dump(mode="json"),
            "inputs": {str(p): sha256_file(p) for p in inputs if p.is_file()},
            "code": source_digest("dc003.model", "dc003.scoring", "dc003.train"),
        }
    )


def _data_inputs(paths: PhasePaths) -> list[Path]:
    from dc003.text.embed import VECTORS_FILE

    return [paths.dataset_dir / "manifest.json", paths.text_dir / VECTORS_FILE]


def _common(
    model: TwoTowerModel, data: TrainingData, device: torch.device
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from dc003.train.batches import ItemTable

    examples = {"train": data.rows("train"), "val": data.rows("val")}
    items = {s: ItemTable.periods(data, s, device) for s in ("train", "val")}
    return examples, items


def _train(
    name: str,
    model: TwoTowerModel,
    data: TrainingData,
    recipe: Recipe,
    settings: LoopSettings,
    paths: PhasePaths,
    resume_key: str,
    device: torch.device,
    progress: bool,
) -> PhaseResult:
    from dc003.train.distributed import process_group
    from dc003.train.loop import train_phase
    from dc003.train.resume import ResumeStore
    from dc003.train.validation import retrieval_metrics, retrieval_set, validation_loss

    _check_examples(name, data, recipe, paths.dataset_dir)
    rset = retrieval_set(data, "val", settings.val_max_users, settings.seed)

    def validate(m: TwoTowerModel) -> dict[str, float]:
        out = {"val/loss": validation_loss(m, recipe, settings.batch_size, settings.seed)}
        out.update(
            {
                f"val/{k}": v
                for k, v in retrieval_metrics(
                    m, data, rset, recipe.items["val"][0], recipe.max_len, device
                ).items()
            }
        )
        return out

    store = ResumeStore(paths.resume_dir, resume_key)
    with process_group(device) as dist:
        result = train_phase(
            model,
            recipe,
            settings,
            device=device,
            validate=validate,
            live_dir=paths.live_dir,
            resume=store,
            progress=progress,
            dist=dist,
        )
    if dist is None or dist.main:
        store.clear()
    return result


def _check_examples(name: str, data: TrainingData, recipe: Recipe, dataset_dir: Path) -> None:
    """Stop with one line when the train split cannot make a batch; warn when val is empty."""
    import sys

    from dc003.errors import Dc003Error
    from dc003.params import dataset_profile

    file = dataset_dir / "interactions.parquet"
    window = data.cutoffs["val"] - data.cutoffs["train"]
    profile = dataset_profile(dataset_dir)  # its overrides win over params.yaml
    knob = (
        f"{profile} overrides dataset.train_window_days"
        if profile
        else "params.yaml dataset.train_window_days"
    )
    n_examples = int(recipe.examples["train"].size)
    n_baskets = int(np.unique(recipe.baskets["train"]).size)
    if n_baskets < 2:
        raise Dc003Error(
            f"{file}: split train: {n_examples} interaction(s) in {n_baskets} basket(s) (customer-days) in "
            f"the {window}-day train window; {name} needs at least 2 (batch norm trains on two or more user "
            f"rows): widen {knob}"
        )
    if recipe.examples["val"].size == 0:
        print(
            f"warning: {name}: {file}: split val: no interactions in the val week: the val metrics are NaN "
            f"(contracts/dc002.yaml splits.val_days sets its length)",
            file=sys.stderr,
        )


def _write_phase(
    name: str,
    model: TwoTowerModel,
    data: TrainingData,
    result: PhaseResult,
    settings: LoopSettings,
    paths: PhasePaths,
    params: PhaseParams,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from dc003.model import checkpoint
    from dc003.train.validation import popularity_baseline, retrieval_set

    model.cpu()
    summary: dict[str, Any] = {
        "phase": name,
        "device": result.device,
        "precision": result.precision,
        "settings": settings.__dict__,
        "params": params.model_dump(mode="json"),  # the phase's params.yaml section, objective included
        "parameter_count": model.parameter_counts(),
        "steps": result.steps,
        "train_samples": result.train_samples,
        "step_loss_head": result.step_losses_head,
        "step_loss_tail": result.step_losses_tail,
        "initial_val_loss": result.initial_val_loss,
        "epochs": result.epochs,
        "final": result.epochs[-1] if result.epochs else {},
        "popularity_baseline_val": popularity_baseline(data, retrieval_set(data, "val")),
        "grad_stats": result.grad_stats,
        **({"processes": result.processes} if result.processes > 1 else {}),
        **(extra or {}),
    }
    # how fast this machine ran it: beside the checkpoint, never in it (a phase directory is a function of
    # its inputs, so a re-run on identical inputs re-runs nothing downstream); the gates read it
    speed = {
        "phase": name,
        "device": {"name": result.device, "cuda": result.device.startswith("cuda")},
        "precision": result.precision,
        "processes": result.processes,
        "train_samples": result.train_samples,
        "train_seconds": round(result.train_seconds, 3),
        "samples_per_s": round(result.samples_per_s, 1),
        "gpu_peak_memory_percent": _gpu_peak_percent(),
    }
    history: list[dict[str, Any]] = []
    if paths.input_dir is not None and (paths.input_dir / HISTORY_FILE).is_file():
        history = list(read_json(paths.input_dir / HISTORY_FILE))
    history.append(summary)
    paths.out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.save_model(paths.out_dir / MODEL_FILE, model, phase=name, metrics=_scalars(summary["final"]))
    write_json(paths.out_dir / SUMMARY_FILE, summary)
    write_json(paths.out_dir / HISTORY_FILE, history)
    write_json(paths.live_dir / SPEED_FILE, speed)
    return {**summary, "speed": speed}


def _gpu_peak_percent() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    total = torch.cuda.get_device_properties(0).total_memory
    return round(100.0 * torch.cuda.max_memory_allocated() / total, 2)


def _scalars(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _load_previous(paths: PhasePaths, dc002_path: Path) -> tuple[TwoTowerModel, TrainingData]:
    from dc003.contracts import load_dc002
    from dc003.model import checkpoint
    from dc003.text.embed import load_item_text
    from dc003.train.data import load_training_data

    assert paths.input_dir is not None
    model, _ = checkpoint.load_model(paths.input_dir / MODEL_FILE)
    data = load_training_data(
        paths.dataset_dir, load_item_text(paths.text_dir), model.config, load_dc002(dc002_path)
    )
    return model, data


@dataclass(frozen=True)
class PhaseInputs:
    """What a phase's recipe is built from: the model, its data, the train / val examples and catalogues."""

    model: TwoTowerModel
    data: TrainingData
    examples: dict[str, np.ndarray]
    items: dict[str, Any]
    device: torch.device

    @property
    def max_len(self) -> int:
        return self.model.config.user_tower.sequence.max_len

    def recipe_inputs(self) -> dict[str, Any]:
        """The keyword arguments every recipe takes from the phase (its objective and extras are its own)."""
        return {
            "data": self.data,
            "examples": self.examples,
            "items": self.items,
            "max_len": self.max_len,
            "device": self.device,
        }


@dataclass(frozen=True)
class PhaseRun:
    summary: dict[str, Any]  # empty on a rank other than 0 (which writes nothing)
    model: TwoTowerModel
    data: TrainingData
    result: PhaseResult


def run_phase(
    name: str,
    seed: int,
    params: PhaseParams,
    paths: PhasePaths,
    *,
    load: Callable[[], tuple[TwoTowerModel, TrainingData]],
    recipe: Callable[[PhaseInputs], tuple[Recipe, dict[str, Any]]],
    key_inputs: list[Path],
    key_suffix: str = "",
    settings: dict[str, Any] | None = None,
    progress: bool = True,
) -> PhaseRun:
    """The one skeleton of every phase: device, model and data (``load``), the phase's recipe (``recipe``:
    the objective and its negatives, plus what the summary records about them), loop settings (the phase's
    params and its ``settings`` extras), the resume key (the data, ``key_inputs`` and the params), train,
    write ``<out_dir>`` (rank 0 of a distributed run only)."""
    from dc003.train.distributed import is_main

    device = _device()
    model, data = load()
    examples, items = _common(model, data, device)
    phase_recipe, extra = recipe(PhaseInputs(model, data, examples, items, device))
    loop = _settings(name, seed, params, **(settings or {}))
    key = _resume_key(name, seed, params, [*_data_inputs(paths), *key_inputs]) + key_suffix
    result = _train(name, model, data, phase_recipe, loop, paths, key, device, progress)
    summary = _write_phase(name, model, data, result, loop, paths, params, extra) if is_main() else {}
    return PhaseRun(summary, model, data, result)


def _previous_model(paths: PhasePaths) -> Path:
    assert paths.input_dir is not None
    return paths.input_dir / MODEL_FILE


def _run_after_previous(
    name: str,
    seed: int,
    params: PhaseParams,
    paths: PhasePaths,
    dc002_path: Path,
    recipe: Callable[[PhaseInputs], tuple[Recipe, dict[str, Any]]],
    *,
    settings: dict[str, Any] | None = None,
    progress: bool = True,
) -> PhaseRun:
    """:func:`run_phase` for phases 2..4: the model is the previous phase's output, which (with the DC-002
    contract) is also what keys the phase's resume state."""
    return run_phase(
        name,
        seed,
        params,
        paths,
        load=lambda: _load_previous(paths, dc002_path),
        recipe=recipe,
        key_inputs=[_previous_model(paths), dc002_path],
        settings=settings,
        progress=progress,
    )


def run_phase_1(
    seed: int,
    model_params: ModelParams,
    params: Phase1Params,
    paths: PhasePaths,
    *,
    dc003_path: Path,
    dc002_path: Path,
    progress: bool = True,
) -> dict[str, Any]:
    from dc003.contracts import load_dc002, load_dc003
    from dc003.train.objectives import BprObjective
    from dc003.train.recipes import BprRecipe

    _check_validated(paths.validation)

    def load() -> tuple[TwoTowerModel, TrainingData]:
        dc003, dc002 = load_dc003(dc003_path), load_dc002(dc002_path)
        return build_model(seed, model_params, paths.dataset_dir, paths.text_dir, dc003, dc002)

    def recipe(x: PhaseInputs) -> tuple[Recipe, dict[str, Any]]:
        return BprRecipe(
            **x.recipe_inputs(),
            objective=BprObjective(margin=params.margin),
            negatives=params.negatives,
        ), {}

    return run_phase(
        "phase_1",
        seed,
        params,
        paths,
        load=load,
        recipe=recipe,
        key_inputs=[dc003_path, dc002_path],
        key_suffix=_model_params_key(model_params),
        progress=progress,
    ).summary


def build_model(
    seed: int,
    model_params: ModelParams,
    dataset_dir: Path,
    text_dir: Path,
    dc003: Dc003Contract,
    dc002: Dc002Contract,
) -> tuple[TwoTowerModel, TrainingData]:
    """A fresh model (seeded) from the contracts, the ``model`` params and train-split statistics, and the
    training data it reads (phase 1 and the training benchmark build it the same way)."""
    import torch

    from dc003.model.config import resolve_model_config
    from dc003.model.two_tower import TwoTowerModel
    from dc003.text.embed import load_item_text
    from dc003.train.data import fit_stats, load_training_data, read_counts

    n_users, n_items = read_counts(dataset_dir)
    sources = {n.name: n.column for n in dc002.compatibility.numerical}
    stats = fit_stats(dataset_dir, sources, n_users, n_items)
    config = resolve_model_config(dc003, dc002, model_params, n_items=n_items, stats=stats)
    data = load_training_data(dataset_dir, load_item_text(text_dir), config, dc002)
    torch.manual_seed(seed)
    model = TwoTowerModel(config)
    model.user_tower.history.set_item_attributes(torch.from_numpy(data.item_attributes))
    return model, data


def _model_params_key(p: ModelParams) -> str:
    from dc003.train.resume import input_key

    return input_key(p.model_dump(mode="json"))[:8]


def in_batch_log_q(data: TrainingData, rows: np.ndarray) -> np.ndarray:
    from dc003.train.negatives import log_sampling_probability

    return log_sampling_probability(np.bincount(data.item[rows], minlength=data.n_items))


def run_phase_2(
    seed: int, params: Phase2Params, paths: PhasePaths, *, dc002_path: Path, progress: bool = True
) -> dict[str, Any]:
    from dc003.train.objectives import InfoNceObjective
    from dc003.train.recipes import InBatchRecipe

    def recipe(x: PhaseInputs) -> tuple[Recipe, dict[str, Any]]:
        return InBatchRecipe(
            **x.recipe_inputs(),
            objective=InfoNceObjective(
                params.temperature,
                params.label_smoothing,
                params.popularity_weight,
                distillation_weight=params.distillation_weight,
                distillation_temperature=params.distillation_temperature,
            ),
            log_q=in_batch_log_q(x.data, x.examples["train"]),
            shared_negatives=params.random_negatives,
            history_weight=params.history_weight,
            history_dropout=params.history_dropout,
            teacher=teacher_item_factors(x.data, params.distillation_teacher, seed)
            if params.distillation_weight
            else None,
        ), {}

    return _run_after_previous(
        "phase_2",
        seed,
        params,
        paths,
        dc002_path,
        recipe,
        settings={
            "gradient_accumulation": params.gradient_accumulation,
            "min_learning_rate": params.min_learning_rate,
            "restart_epochs": params.restart_epochs,
            "restart_mult": params.restart_mult,
            "warmup_steps": params.warmup_steps,
        },
        progress=progress,
    ).summary


def teacher_item_factors(data: TrainingData, als: AlsParams, seed: int) -> np.ndarray:
    """L2-normalised implicit-ALS item factors from every purchase before the val cutoff (history and train
    splits): the collaborative view of the items that phase 2 distils into the item tower. An item first
    bought later is never a training positive, so its row (whatever direction ALS leaves it) never teaches."""
    from dc003.scoring.baselines import fit_als, purchase_counts
    from dc003.train.data import SPLIT_CODES

    seen = data.split <= SPLIT_CODES["train"]
    counts = purchase_counts(data.user[seen], data.item[seen], (data.n_users, data.n_items))
    threads = max(1, len(os.sched_getaffinity(0)))
    _, items = fit_als(counts, **als.model_dump(), seed=seed, num_threads=threads)
    norm = np.linalg.norm(items, axis=1, keepdims=True)
    return (items / np.maximum(norm, 1e-12)).astype(np.float32)


def _mine(
    model: TwoTowerModel,
    data: TrainingData,
    recipe_items: dict[str, Any],
    examples: dict[str, np.ndarray],
    params: Phase3Params,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from dc003.train.negatives import neighbour_candidates, select_hard_negatives, training_positive_codes
    from dc003.train.validation import embed_items

    model.eval()
    emb = embed_items(model, recipe_items["train"][-1])
    model.train()
    cand = neighbour_candidates(
        emb, data.item_category, params.similarity_threshold, params.hard_negative_candidates
    )
    codes = training_positive_codes(data)
    hard = {
        s: select_hard_negatives(
            data.user[rows], data.item[rows], cand, codes, data.n_items, params.max_hard_negatives
        )
        for s, rows in examples.items()
    }
    tr = hard["train"]
    n_valid = (tr >= 0).sum(axis=1)
    pos_cat = data.item_category[data.item[examples["train"]]]
    other = (tr >= 0) & (data.item_category[np.maximum(tr, 0)] != pos_cat[:, None])
    stats = {
        "examples": int(tr.shape[0]),
        "mean_hard_negatives": float(n_valid.mean()) if tr.size else 0.0,
        "share_with_any": float((n_valid > 0).mean()) if tr.size else 0.0,
        "share_other_category": float(other.sum() / max(int((tr >= 0).sum()), 1)),
        "items_with_candidates": float(((cand >= 0).sum(axis=1) > 0).mean()),
    }
    return hard, stats


def run_phase_3(
    seed: int, params: Phase3Params, paths: PhasePaths, *, dc002_path: Path, progress: bool = True
) -> dict[str, Any]:
    from dc003.train.objectives import CompositeObjective, InfoNceObjective
    from dc003.train.recipes import HardNegativeRecipe

    def recipe(x: PhaseInputs) -> tuple[Recipe, dict[str, Any]]:
        x.model.to(x.device)  # the hard negatives are mined with the phase-2 model, on the device
        hard, mining = _mine(x.model, x.data, x.items, x.examples, params)
        return HardNegativeRecipe(
            **x.recipe_inputs(),
            objective=CompositeObjective(
                InfoNceObjective(params.temperature, params.label_smoothing, params.popularity_weight),
                infonce_weight=params.infonce_weight,
                category_weight=params.category_weight,
                category_temperature=params.category_temperature,
            ),
            log_q=in_batch_log_q(x.data, x.examples["train"]),
            shared_negatives=0,
            hard=hard,
        ), {"hard_negative_mining": mining}

    return _run_after_previous("phase_3", seed, params, paths, dc002_path, recipe, progress=progress).summary


def run_phase_4(
    seed: int,
    params: Phase4Params,
    paths: PhasePaths,
    *,
    checkpoints_dir: Path,
    reports_dir: Path,
    metrics_dir: Path,
    dc003_path: Path,
    dc002_path: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Phase 4, then the contract's checkpoint artifacts and the training reports from phases 1..4."""
    from dc003.contracts import load_dc003
    from dc003.train.objectives import ConsistencyObjective
    from dc003.train.recipes import Recipe
    from dc003.train.report import architecture_report, training_metrics, write_contract_checkpoints

    def recipe(x: PhaseInputs) -> tuple[Recipe, dict[str, Any]]:
        return Recipe(
            **x.recipe_inputs(),
            objective=ConsistencyObjective(params.temperature),
        ), {}

    run = _run_after_previous(
        "phase_4",
        seed,
        params,
        paths,
        dc002_path,
        recipe,
        settings={"ema_decay": params.ema_decay},
        progress=progress,
    )
    if not run.summary:  # another rank than 0
        return run.summary
    contract = load_dc003(dc003_path)
    history = list(read_json(paths.out_dir / HISTORY_FILE))
    write_contract_checkpoints(run.model, run.result.optimizer_state, contract, checkpoints_dir)
    write_json(
        reports_dir / "architecture_validation.json",
        architecture_report(run.model, run.data, history, contract),
    )
    write_json(metrics_dir / "training_metrics.json", training_metrics(history))
    return run.summary


def run_all_phases(
    params: Params, root: Path, *, dc003_path: Path, dc002_path: Path, progress: bool = False
) -> None:
    """Phases 1-4 in order, for the scripts: ``root/dataset`` and ``root/text`` in; ``phases/``, ``live/``,
    ``resume/`` (one directory per phase), ``checkpoints/``, ``reports/`` and ``metrics/`` out."""

    def paths(n: int) -> PhasePaths:
        return PhasePaths(
            dataset_dir=root / "dataset",
            text_dir=root / "text",
            out_dir=root / f"phases/phase_{n}",
            live_dir=root / f"live/phase_{n}",
            resume_dir=root / f"resume/phase_{n}",
            input_dir=root / f"phases/phase_{n - 1}" if n > 1 else None,
        )

    seed = params.seed
    run_phase_1(
        seed, params.model, params.phase_1, paths(1), dc003_path=dc003_path, dc002_path=dc002_path,
        progress=progress,
    )  # fmt: skip
    run_phase_2(seed, params.phase_2, paths(2), dc002_path=dc002_path, progress=progress)
    run_phase_3(seed, params.phase_3, paths(3), dc002_path=dc002_path, progress=progress)
    run_phase_4(
        seed, params.phase_4, paths(4), checkpoints_dir=root / "checkpoints", reports_dir=root / "reports",
        metrics_dir=root / "metrics", dc003_path=dc003_path, dc002_path=dc002_path, progress=progress,
    )  # fmt: skip
