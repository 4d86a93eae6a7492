"""scripts/scale_10m.py on a tiny export (20,000 users): the embeddings file, storage, FAISS and the
measured / extrapolated flags of reports/scale_10m.json's shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import REPO
from tests.test_deploy import export_tiny

USERS = 20_000


def test_scale_script_writes_unit_embeddings_and_flags_what_it_extrapolates(tmp_path: Path) -> None:
    arts = export_tiny(tmp_path / "export")["arts"]
    scratch, out = tmp_path / "scratch", tmp_path / "scale.json"
    scratch.mkdir()
    args = ["--users", str(USERS), "--chunk", "6000", "--artifacts", str(arts), "--scratch", str(scratch),
            "--keep", "--out", str(out), "--baseline-users", "2000", "--repeats", "1", "--sample", "1000",
            "--single-queries", "50", "--query-batch", "250"]  # fmt: skip
    subprocess.run([sys.executable, str(REPO / "scripts/scale_10m.py"), *args], check=True, cwd=REPO)
    report = json.loads(out.read_text())
    (run_dir,) = scratch.iterdir()
    for dtype, itemsize in (("float32", 4), ("float16", 2)):
        path = run_dir / f"user_embeddings.{dtype}.npy"
        emb = np.load(path, mmap_mode="r")
        assert emb.shape == (USERS, 128) and emb.dtype == np.dtype(dtype)
        norms = np.linalg.norm(np.asarray(emb, dtype=np.float32), axis=1)
        assert np.allclose(norms, 1.0, atol=2e-3)
        assert len(np.unique(np.asarray(emb[:500]), axis=0)) > 400  # different histories, different users
        header = path.stat().st_size - USERS * 128 * itemsize
        assert 0 < header <= 128 and report["files"][dtype]["bytes"] == path.stat().st_size
        assert report["at_10m"]["storage_bytes"][dtype]["value"] == 10_000_000 * 128 * itemsize + header
    assert report["ratio_to_baseline"]["fp16_over_fp32_storage"] == 0.5
    assert report["population"]["catalogue_articles_unmapped"] == 6000  # the tiny export has other ids
    emb_ = report["embedding"]
    assert emb_["users_per_s"] > 0 and 0 < emb_["batch_ms"]["p50"] <= emb_["batch_ms"]["p95"]
    assert all(v > 0 for v in emb_["phase_seconds"].values())
    threads = report["ratio_to_baseline"]["threads"]
    assert threads["ratio_threads_2_over_1"] == round(
        threads["threads_2"]["users_per_s_median"] / threads["threads_1"]["users_per_s_median"], 3
    )
    for name in ("exported", "flat_ip_105542_random"):
        lat = report["faiss"][name]
        assert 0 < lat["single_query_ms"]["p50"] <= lat["single_query_ms"]["p95"]
        assert lat["batched"]["per_query_ms"] > 0
    assert report["faiss"]["flat_ip_105542_random"]["items"] == 105_542
    # 20,000 users: every 10M figure but the per-user throughput is extrapolated, and says so
    assert report["measured_at_10m"] is False
    for key, entry in report["at_10m"].items():
        if isinstance(entry, dict) and "measured" in entry:
            assert entry["measured"] is (key == "users_per_s"), key
            assert entry["how"] != "measured" or entry["measured"], key
    assert report["at_10m"]["embed_seconds"]["value"] > report["embedding"]["phase_seconds"]["embed"]
    mappings = report["mappings_at_n"]
    assert report["at_10m"]["mappings_bytes"]["value"] == mappings["bytes"] + (10_000_000 - USERS) * 36
    assert report["contract_5gb"]["fp16_under_5gb"] is True
