"""What phase 4 writes besides its own phase directory: the contract's checkpoint artifacts, the
architecture-validation record for the gates and the training history (``training_metrics.json``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from dc003.model import checkpoint

if TYPE_CHECKING:
    from dc003.contracts.dc003 import Dc003Contract
    from dc003.model.two_tower import TwoTowerModel
    from dc003.train.data import TrainingData

_SHAPE_SAMPLE = 256


def write_contract_checkpoints(
    model: TwoTowerModel, optimizer_state: dict[str, Any], contract: Dc003Contract, checkpoints_dir: Path
) -> dict[str, Path]:
    """``best_model.pt`` (config + full state dict), ``user_tower.pt`` / ``item_tower.pt`` (config + that
    tower's state dict), ``optimizer.pt`` (optimizer state dict); file names from the contract."""
    arts = contract.output_artifacts
    config = model.config.model_dump(mode="json")
    files: dict[str, dict[str, Any]] = {
        "best_model.pt": {"config": config, "state_dict": model.state_dict()},
        "user_tower.pt": {
            "config": config,
            "tower": "user_tower",
            "state_dict": model.user_tower.state_dict(),
        },
        "item_tower.pt": {
            "config": config,
            "tower": "item_tower",
            "state_dict": model.item_tower.state_dict(),
        },
        "optimizer.pt": {"state_dict": optimizer_state},
    }
    out = {}
    for name, obj in files.items():
        path = checkpoints_dir / Path(arts.path_of(name)).name
        checkpoint.save(path, obj)
        out[name] = path
    return out


def _output_shapes(model: TwoTowerModel, data: TrainingData) -> dict[str, Any]:
    import torch

    from dc003.train.batches import ItemTable, user_features

    rows = data.rows("val")[:_SHAPE_SAMPLE]
    if rows.size == 0:  # a val week without purchases: any users' rows (only shapes and norms are checked)
        rows = np.arange(min(_SHAPE_SAMPLE, data.user.size))
    model.eval()
    with torch.no_grad():
        u = model.get_user_embeddings(
            user_features(
                data,
                data.features["val"],
                rows,
                model.config.user_tower.sequence.max_len,
                torch.device("cpu"),
            )
        )
        items = ItemTable.build(data, "val", torch.device("cpu")).take(
            np.arange(min(_SHAPE_SAMPLE, data.n_items))
        )
        i = model.get_item_embeddings(items)
    dim = model.config.embedding_dim
    norm_err = float(max((u.norm(dim=1) - 1).abs().max(), (i.norm(dim=1) - 1).abs().max()))
    ok = (
        u.shape[1] == dim
        and i.shape[1] == dim
        and norm_err < 1e-4
        and bool(torch.isfinite(u).all() and torch.isfinite(i).all())
    )
    return {
        "ok": ok,
        "expected_dim": dim,
        "user_tower": list(u.shape),
        "item_tower": list(i.shape),
        "max_unit_norm_error": norm_err,
    }


def architecture_report(
    model: TwoTowerModel, data: TrainingData, history: list[dict[str, Any]], contract: Dc003Contract
) -> dict[str, Any]:
    from dc003.train.archcheck import gradient_flow, loss_trend

    flow_check = contract.model_validation.find("gradient_flow")
    min_norm = flow_check.min_grad_norm or 0.0
    max_norm = flow_check.max_grad_norm or math.inf
    per_phase_flow = {h["phase"]: gradient_flow(h["grad_stats"], min_norm, max_norm) for h in history}
    picked = {h["phase"]: phase_losses(h) for h in history}
    trend = loss_trend({name: losses for name, (losses, _) in picked.items()})
    for name, (_, source) in picked.items():
        trend["phases"][name]["source"] = source
    return {
        "parameter_count": {**model.parameter_counts(), "total": sum(model.parameter_counts().values())},
        "output_shapes": _output_shapes(model, data),
        "gradient_flow": {
            "ok": all(f["ok"] for f in per_phase_flow.values()),
            "phases": per_phase_flow,
            "layers": {h["phase"]: h["grad_stats"] for h in history},
        },
        "loss_trend": trend,
        "devices": {h["phase"]: h["device"] for h in history},
        "precision": {h["phase"]: h["precision"] for h in history},
    }


def phase_losses(h: dict[str, Any]) -> tuple[list[float], str]:
    """The losses a phase's trend is judged on (``(losses, source)``), from its history ``h``:

    - ``train``: the epoch means of the training loss, when every epoch trains on all the examples;
    - ``val``: the objective on the same val examples after each epoch, when each epoch draws its own
      sample of ``examples_per_epoch`` train examples (epoch means over different draws differ by the draw:
      phase 3 takes two steps an epoch at the generator's small scale, and its epoch means rose while its
      val loss fell);
    - ``val before / after``: one epoch, the objective on the same val examples before and after it;
    - ``steps``: neither (no val examples), the first and last tenth of its steps."""
    losses = [float(e["train/epoch_loss"]) for e in h["epochs"]]
    val = [e.get("val/loss") for e in h["epochs"]]
    sampled = bool(h.get("settings", {}).get("examples_per_epoch"))
    if len(losses) >= 2 and sampled and all(_finite(v) for v in val):
        return [float(v) for v in val], "val"
    if len(losses) >= 2:
        return losses, "train"
    before, after = h.get("initial_val_loss"), val[-1] if val else None
    if _finite(before) and _finite(after):
        return [float(before), float(after)], "val before / after"
    return [float(h["step_loss_head"]), float(h["step_loss_tail"])], "steps"


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and math.isfinite(value)


def training_metrics(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The training history of all four phases without the per-layer gradient tables."""
    return {
        "phases": [{k: v for k, v in h.items() if k != "grad_stats"} for h in history],
        "final": history[-1]["final"] if history else {},
        "popularity_baseline_val": history[-1]["popularity_baseline_val"] if history else {},
    }
