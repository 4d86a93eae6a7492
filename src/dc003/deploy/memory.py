"""Memory of one tower session: RSS growth of creating it and running one batch, in a fresh process.

The child imports only onnxruntime, numpy and psutil; its RSS after those imports is the baseline, so the
figure is what the session (graph, weights, arenas of one run) adds, not the interpreter or the library.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CHILD = """
import json, sys, numpy as np, onnxruntime as ort, psutil
proc = psutil.Process()
base = proc.memory_info().rss
opts = ort.SessionOptions(); opts.intra_op_num_threads = int(sys.argv[2]); opts.log_severity_level = 3
sess = ort.InferenceSession(sys.argv[1], sess_options=opts, providers=["CPUExecutionProvider"])
feed = {i.name: np.load(f"{sys.argv[3]}/{i.name}.npy") for i in sess.get_inputs()}
sess.run(None, feed)
after = proc.memory_info().rss
print(json.dumps({"rss_growth_mb": (after - base) / 2**20, "rss_mb": after / 2**20}))
"""


def session_memory_mb(model: Path, feed: dict[str, np.ndarray], threads: int) -> dict[str, float]:
    import os

    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, arr in feed.items():
            np.save(Path(tmp) / f"{name}.npy", arr)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(model), str(threads), tmp],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
