"""The worker of tests/test_distributed.py, run by torchrun: the phases' objectives on a few batches of the
tiny dataset, split across the ranks. No tests here; the test computes the one-process reference with the
same helpers.

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m tests.distributed_worker ROOT OUT

writes ``OUT/grads.pt`` (rank 0: loss and gradients per objective and batch) and ``OUT/rank<r>.pt`` (each
rank's weights after a short training run).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dc003.model.two_tower import TwoTowerModel
from dc003.train.data import TrainingData
from dc003.train.recipes import Recipe
from tests.test_train_fixtures import contracts, tiny_config

BATCH = 16
STEPS = 3  # batches per objective
MODEL = {"history_residual": True, "history_residual_inputs": True, "history_residual_centred": True}
Step = tuple[float, dict[str, torch.Tensor]]


def load(root: Path, device: torch.device) -> tuple[TrainingData, dict[str, Recipe]]:
    """The tiny data and one recipe per phase objective (as :mod:`dc003.train.run` builds them)."""
    from dc003.params.evaluate import AlsParams
    from dc003.train.batches import ItemTable
    from dc003.train.data import load_training_data
    from dc003.train.negatives import neighbour_candidates, select_hard_negatives, training_positive_codes
    from dc003.train.objectives import BprObjective, CompositeObjective, InfoNceObjective
    from dc003.train.recipes import BprRecipe, HardNegativeRecipe, InBatchRecipe
    from dc003.train.run import in_batch_log_q, teacher_item_factors

    text = np.load(root / "text" / "item_text.npy")
    data = load_training_data(root / "dataset", text, tiny_config(**MODEL), contracts()[1])
    examples = {"train": data.rows("train"), "val": data.rows("val")}
    common = {
        "data": data,
        "examples": examples,
        "items": {s: ItemTable.periods(data, s, device) for s in ("train", "val")},
        "max_len": 50,
        "device": device,
    }
    log_q = in_batch_log_q(data, examples["train"])
    teacher = teacher_item_factors(
        data, AlsParams(factors=8, iterations=3, regularization=0.05, alpha=40.0), 0
    )
    vectors = np.random.default_rng(0).normal(size=(data.n_items, 8)).astype(np.float32)
    cand = neighbour_candidates(vectors, data.item_category, -1.0, 8)
    codes = training_positive_codes(data)
    hard = {
        s: select_hard_negatives(data.user[r], data.item[r], cand, codes, data.n_items, 3)
        for s, r in examples.items()
    }
    infonce = InfoNceObjective(0.08, 0.1, 0.5, distillation_weight=1.0, distillation_temperature=0.1)
    return data, {
        "phase_1": BprRecipe(**common, objective=BprObjective(0.1), negatives=2),
        "phase_2": InBatchRecipe(
            **common, objective=infonce, log_q=log_q, shared_negatives=4, history_weight=1.0, teacher=teacher
        ),
        "phase_3": HardNegativeRecipe(
            **common,
            objective=CompositeObjective(InfoNceObjective(0.08, 0.05, 0.5), 0.9, 0.1, 0.1),
            log_q=log_q,
            hard=hard,
        ),
    }


def model(data: TrainingData, recipe: Recipe, device: torch.device) -> TwoTowerModel:
    torch.manual_seed(0)
    m = TwoTowerModel(tiny_config(**MODEL))
    m.user_tower.history.set_item_attributes(torch.from_numpy(data.item_attributes))
    m.objective, m.history_weight = recipe.objective, recipe.history_weight
    return m.to(device).train()


def steps(m: TwoTowerModel, forward: Callable[..., torch.Tensor], recipe: Recipe) -> list[Step]:
    """Loss and gradients of ``forward`` on the first ``STEPS`` batches of an epoch (no optimiser step)."""
    rng = np.random.default_rng(5)
    out = []
    for k, pos in enumerate(recipe.order("train", BATCH, rng)[:STEPS]):
        users, items, labels = recipe.batch("train", pos, rng)
        torch.manual_seed(100 + k)  # the dropout masks
        loss = forward(users, items, labels)
        loss.backward()
        grads = {n: p.grad.detach().cpu().clone() for n, p in m.named_parameters() if p.grad is not None}
        out.append((float(loss.detach()), grads))
        m.zero_grad(set_to_none=True)
    return out


def main(root: Path, out: Path) -> None:
    from dc003.train.distributed import device as process_device
    from dc003.train.distributed import process_group
    from dc003.train.loop import LoopSettings, train_phase

    torch.set_num_threads(1)
    device = process_device()
    data, recipes = load(root, device)
    with process_group(device) as dist:
        assert dist is not None, "run me under torchrun"
        results = {}
        for name, recipe in recipes.items():
            m = model(data, recipe, device)
            net = dist.wrap(m)
            results[name] = steps(m, net, recipe)
            dist.unwrap(m)
        if dist.main:
            torch.save(results, out / "grads.pt")
        # a short training run: every rank must end with the same weights and statistics
        recipe = recipes["phase_2"]
        m = model(data, recipe, device)
        settings = LoopSettings(
            phase="phase_2", seed=3, epochs=2, batch_size=BATCH, learning_rate=1e-3, weight_decay=1e-5,
            gradient_clipping=1.0, mixed_precision=True, scheduler="constant", gradient_accumulation=2,
        )  # fmt: skip
        result = train_phase(
            m, recipe, settings, device=device, validate=lambda _: {}, progress=False, dist=dist
        )
        state = {k: v.cpu() for k, v in m.state_dict().items()}
        torch.save({"state": state, "precision": result.precision}, out / f"rank{dist.rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
