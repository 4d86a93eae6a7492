"""A training stage on ``train.nproc`` processes: the stage command re-runs its own module under torchrun.

``python -m pipeline.phase_2 ARGS`` with ``train.nproc: 2`` runs
``python -m torch.distributed.run --standalone --nproc_per_node 2 -m pipeline.phase_2 ARGS`` and exits
with its status, so ``dvc repro`` and ``dvc exp run -S train.nproc=2`` need no other command. The workers
see torchrun's environment (``LOCAL_RANK``...) and train (:mod:`dc003.train.distributed`). No torch import
here: the launching process only waits.
"""

from __future__ import annotations

import os
import subprocess
import sys


def worker() -> bool:
    """Whether this process is one of torchrun's workers."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def check_batch_size(phase: str, batch_size: int, nproc: int) -> None:
    from dc003.errors import Dc003Error

    if batch_size % nproc:
        raise Dc003Error(
            f"params.yaml: {phase}.batch_size: {batch_size} is not divisible by train.nproc {nproc} "
            f"(each process runs batch_size / nproc of every batch)"
        )


def run_on_processes(nproc: int, module: str, argv: list[str], *, phase: str, batch_size: int) -> bool:
    """``False`` when this process trains itself (``nproc`` 1, or already one of torchrun's workers).
    Otherwise run ``python -m module argv`` on ``nproc`` processes and return ``True`` once they succeed; a
    failure exits with torchrun's status (the failing worker printed its error)."""
    if nproc == 1 or worker():
        return False
    check_batch_size(phase, batch_size, nproc)  # before starting anything
    code = subprocess.run(torchrun(nproc, ["-m", module, *argv]), env=torchrun_env(nproc), check=False)
    if code.returncode:
        sys.exit(code.returncode)
    return True


def torchrun(nproc: int, target: list[str]) -> list[str]:
    """The command running ``target`` (``-m module args`` or ``script args``) on ``nproc`` local processes."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*launcher, *target]


def torchrun_env(nproc: int) -> dict[str, str]:
    """This environment, the machine's cores shared by the workers (torchrun would give each one thread)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // nproc)))
    return env
