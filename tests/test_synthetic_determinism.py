"""The synthetic generator writes the same bytes on every machine: a pinned tiny-scale digest of the raw
stage's output, reproduced under other BLAS kernels, thread counts and numpy SIMD levels (each run in a
fresh interpreter, since OpenBLAS and numpy pick their kernels at import)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# sha256 of data/raw at data.scale: tiny, seed 42. Changing what the generator draws changes these on
# purpose; anything else that moves them (a kernel, a thread count, a CPU) is a reproducibility bug.
PINNED = {
    "articles.csv": "184651cb9ed94d8b280275b69fff09e58a1905832cdddc117e5b07c6c579124c",
    "customers.csv": "2b598094e41b8647b05c0b4ca469d4a91c474e72defc56725e64d56ee1f6bf2a",
    "oracle.parquet": "269fe68b722ffbdf7e46a98b66ac765d58d6def33c9bd15b38aae8ec857e1a65",
    "source.json": "c50e393bdc0b76fd72c59179f5b6e6b400b4ecbb48bcc1465d0241a9df71c305",
    "transactions_train.csv": "a79aedea60de6b209c3fab4a772a76a9a4b2025b439641a78201132145879be1",
}

_SCRIPT = """
import json, sys
from pathlib import Path
from dc003.contracts import load_dc002
from dc003.data.raw import make_raw
from dc003.params.data import DataParams
out = Path(sys.argv[1])
make_raw(out, DataParams(source="synthetic", scale="tiny", kaggle_dir="unused"), 42, load_dc002())
files = json.loads((out / "source.json").read_text())["files"]
print(json.dumps({name: info["sha256"] for name, info in files.items()}))
"""

_BASELINE_SIMD = "SSE SSE2 SSE3 SSSE3 SSE41 POPCNT SSE42 X86_V2"  # numpy's x86-64 baseline, no AVX
VARIANTS = {
    "as installed": {},
    "one thread": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    "four threads": {"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4"},
    "OpenBLAS Prescott kernels (SSE3, no FMA)": {"OPENBLAS_CORETYPE": "Prescott"},
    "OpenBLAS Sandybridge kernels (AVX)": {"OPENBLAS_CORETYPE": "Sandybridge"},
    "OpenBLAS Zen kernels": {"OPENBLAS_CORETYPE": "Zen"},
    "numpy without AVX, Prescott BLAS": {
        "NPY_ENABLE_CPU_FEATURES": _BASELINE_SIMD,
        "OPENBLAS_CORETYPE": "Prescott",
    },
}


def _digest(out: Path, extra_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "NPY_", "OMP_"))}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(out)], env={**env, **extra_env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout.strip().splitlines()[-1])
    files["source.json"] = hashlib.sha256((out / "source.json").read_bytes()).hexdigest()
    return dict(sorted(files.items()))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_tiny_raw_digest_is_pinned_under_every_kernel_and_thread_count(name: str, tmp_path: Path) -> None:
    got = _digest(tmp_path / "raw", VARIANTS[name])
    assert got == PINNED, f"{name}: data/raw at tiny scale moved:\n{json.dumps(got, indent=2)}"
