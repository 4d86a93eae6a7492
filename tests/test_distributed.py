"""Training on several processes (torch.distributed, gloo on this CPU): two processes that split every batch
train exactly as one process on the same global batch.

- the loss and every parameter's gradient of phases 1, 2 and 3's objectives (BPR; InfoNCE with logQ,
  shared random negatives, distillation and the history term; hard negatives + category alignment) on
  two processes equal one process's; after a short run both ranks hold the same weights and statistics;
- the phase_2 stage with ``train.nproc: 2`` (relaunched under torchrun by its own command) gives one
  process's per-step loss curve, and only rank 0 writes anything;
- a batch size that the processes cannot split stops before anything starts.

Tolerances: one step's loss and gradients agree to ~5e-6 of their scale (float32 sums in another order:
the batch-norm statistics and the gathered gradients add two partial sums), so the gradient check allows
1e-4 of each parameter's largest gradient. Over many steps AdamW amplifies such noise wherever a gradient
is analytically zero (the attention's key bias: softmax ignores it), to a ±lr step whose sign is the
noise's, so one process on 1 thread and on 2 threads already part by 1e-3 of the loss within 8 steps at
the default learning rate. The stage comparison therefore trains at lr 1e-5, where that noise moves the
loss by < 1e-6 (measured 2e-7 over 22 steps) while a different batch composition changes it by > 1e-2:
the curves must agree to rel 1e-5.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO
from tests.test_train_fixtures import write_dataset

CPU = torch.device("cpu")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]

# every torchrun worker logs what it writes (Python's audit events), so the test sees which rank wrote
_AUDIT = """
import os, sys
if "RANK" in os.environ and "AUDIT_DIR" in os.environ:
    _log = open(os.path.join(os.environ["AUDIT_DIR"], "rank%s.txt" % os.environ["RANK"]), "a", buffering=1)
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _hook(event, args):
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            mode, flags = args[1] or "", args[2] or 0
            if any(c in mode for c in "wax+") or flags & _WRITE:
                _log.write(os.fsdecode(args[0]) + "\\n")
        elif event == "os.rename":  # os.replace too: an atomic write's temporary file and its target
            _log.write(os.fsdecode(args[0]) + "\\n" + os.fsdecode(args[1]) + "\\n")
        elif event in ("os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"):
            _log.write(os.fsdecode(args[0]) + "\\n")

    sys.addaudithook(_hook)
"""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    path = [str(REPO / "src"), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join([*filter(None, [extra.pop("FIRST_PATH", None)]), *path])
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("tiny"))


def test_two_processes_give_one_process_loss_and_gradients(tiny: Path, tmp_path: Path) -> None:
    from tests.distributed_worker import load, model, steps

    proc = _run([*TORCHRUN, "2", "-m", "tests.distributed_worker", str(tiny), str(tmp_path)], REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    split = torch.load(tmp_path / "grads.pt", weights_only=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data, recipes = load(tiny, CPU)
        for name, recipe in recipes.items():
            m = model(data, recipe, CPU)
            one = steps(m, m, recipe)
            assert len(split[name]) == len(one) > 1
            for k, ((loss_2, grads_2), (loss_1, grads_1)) in enumerate(zip(split[name], one, strict=True)):
                assert loss_2 == pytest.approx(loss_1, rel=1e-5), (name, k)
                assert grads_2.keys() == grads_1.keys()
                for p, g in grads_1.items():
                    scale = float(g.abs().max())
                    assert float((grads_2[p] - g).abs().max()) <= 1e-4 * scale + 1e-12, (name, k, p)
            # not a vacuous match: the batches differ, and so do their losses
            assert len({round(loss, 4) for loss, _ in one}) == len(one), name
    finally:
        torch.set_num_threads(threads)

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["precision"] == "fp32"
    state_0, state_1 = ranks[0]["state"], ranks[1]["state"]
    assert state_0.keys() == state_1.keys()
    assert all(torch.equal(state_0[k], state_1[k]) for k in state_0)
    # the batch statistics moved (synchronised, not left at their initial values)
    assert any("running_mean" in k and bool(v.abs().sum() > 0) for k, v in state_0.items())


def _project(tiny: Path, root: Path, **phase_2: object) -> Path:
    """A project directory the phase stages run in: the tiny data, the contracts, a small params.yaml."""
    shutil.copytree(tiny, root, dirs_exist_ok=True)
    shutil.copytree(REPO / "contracts", root / "contracts", dirs_exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for phase in ("phase_1", "phase_2"):
        params[phase].update(batch_size=16, epochs=2)
    params["phase_2"].update(
        random_negatives=4, restart_mult=1, learning_rate=1e-5, min_learning_rate=1e-6,
        distillation_teacher={"factors": 8, "iterations": 3, "regularization": 0.05, "alpha": 40.0},
        **phase_2,
    )  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return root


def _nproc(root: Path, n: int) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["nproc"] = n
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def _phase_2(root: Path, out: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The phase_2 stage's command, in the project."""
    args = ["--dataset", "dataset", "--text", "text", "--input", "phases/phase_1"]
    args += ["--out", f"{out}/phase_2", "--live", f"{out}/live", "--resume", f"{out}/resume"]
    return _run([sys.executable, "-m", "pipeline.phase_2", *args], root, **env)


def _losses(live: Path) -> list[float]:
    lines = (live / "plots/metrics/train/loss.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [float(line.split("\t")[1]) for line in lines]


def test_phase_2_stage_on_two_processes_trains_like_one_and_only_rank_0_writes(
    tiny: Path, tmp_path: Path
) -> None:
    from dc003.params.train import ModelParams, Phase1Params, Phase2Params
    from dc003.train.run import PhasePaths, run_phase_1, run_phase_2

    root = _project(tiny, tmp_path / "project")
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    contracts = {"dc002_path": REPO / "contracts/dc002.yaml"}

    def paths(phase: str, out: str, previous: str | None = None) -> PhasePaths:
        return PhasePaths(
            root / "dataset", root / "text", root / out / phase, root / out / "live", root / out / "resume",
            input_dir=root / previous if previous else None,
        )  # fmt: skip

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    cpus = os.sched_getaffinity(0)
    # one core, so one torch thread: this process's OpenMP threads spin (no OMP_WAIT_POLICY=PASSIVE as in
    # a stage) and stall on a busy machine
    os.sched_setaffinity(0, {min(cpus)})
    try:  # one process, here: the phase-1 model both runs start from, then phase 2 (the reference)
        run_phase_1(
            params["seed"], ModelParams(**params["model"]), Phase1Params(**params["phase_1"]),
            paths("phase_1", "phases"), dc003_path=REPO / "contracts/dc003.yaml", progress=False, **contracts,
        )  # fmt: skip
        phase_2 = Phase2Params(**params["phase_2"])
        run_phase_2(
            params["seed"], phase_2, paths("phase_2", "one", "phases/phase_1"), progress=False, **contracts
        )
    finally:
        os.sched_setaffinity(0, cpus)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)

    _nproc(root, 2)
    audit = tmp_path / "audit"
    audit.mkdir()
    (tmp_path / "site").mkdir()
    (tmp_path / "site/sitecustomize.py").write_text(_AUDIT, encoding="utf-8")
    two = _phase_2(root, "two", AUDIT_DIR=str(audit), FIRST_PATH=str(tmp_path / "site"))
    assert two.returncode == 0, two.stderr[-4000:]

    curve_1, curve_2 = _losses(root / "one/live"), _losses(root / "two/live")
    assert len(curve_1) == len(curve_2) == 22  # 2 epochs of 11 batches
    assert curve_2 == pytest.approx(curve_1, rel=1e-5)
    assert max(curve_1) - min(curve_1) > 0.1 * min(curve_1)  # batches differ: a curve, not a constant

    summary = json.loads((root / "two/phase_2/summary.json").read_text(encoding="utf-8"))
    assert summary["processes"] == 2
    assert "processes" not in json.loads((root / "one/phase_2/summary.json").read_text(encoding="utf-8"))
    assert json.loads((root / "two/live/speed.json").read_text(encoding="utf-8"))["processes"] == 2
    assert not (root / "two/resume").exists() or not any((root / "two/resume").rglob("*.pt"))

    written = {r: (audit / f"rank{r}.txt").read_text(encoding="utf-8").split() for r in (0, 1)}
    inside = {
        r: [p for p in ps if Path(p).resolve().is_relative_to(root.resolve())] for r, ps in written.items()
    }
    assert any(p.endswith("phase_2/model.pt") for p in written[0]), written[0]  # the log sees rank 0 write
    assert any("/two/live/" in p for p in inside[0])
    assert inside[1] == [], inside[1]


def test_a_batch_the_processes_cannot_split_stops_before_anything_starts(tiny: Path, tmp_path: Path) -> None:
    root = _project(tiny, tmp_path / "project")
    _nproc(root, 3)  # 16 examples per batch
    proc = _phase_2(root, "three")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: stage phase_2: params.yaml: phase_2.batch_size: 16 is not divisible by train.nproc 3 "
        "(each process runs batch_size / nproc of every batch)"
    )
    assert not (root / "three").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_path_runs_nccl_with_fp16_autocast_and_grad_scaler(tiny: Path, tmp_path: Path) -> None:
    n = torch.cuda.device_count()
    proc = _run([*TORCHRUN, str(n), "-m", "tests.distributed_worker", str(tiny), str(tmp_path)], REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(n)]
    assert all(r["precision"] == "fp16-autocast+grad-scaler" for r in ranks)
    assert all(torch.isfinite(v).all() for v in ranks[0]["state"].values() if v.is_floating_point())
