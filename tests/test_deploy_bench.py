"""The bench stage on a tiny exported model: every figure the gates read is there as a plain number, the
latency statistics are ordered, and session memory is measured in a fresh process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import yaml

from dc003.deploy import layout, serving
from dc003.deploy.timing import latency_ms, ratio
from dc003.model import checkpoint
from dc003.params.deploy import BenchParams, ExportParams, ServingParams
from tests.conftest import REPO
from tests.test_deploy import _model
from tests.test_train_fixtures import write_dataset


def _stub_encoder(texts: list[str]) -> np.ndarray:
    # the packaged MiniLM is exercised by the bench stage itself; here only the timing path matters
    return np.stack([np.full(384, len(t), dtype=np.float32) for t in texts])


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from dc003.deploy.bench import run_bench
    from dc003.deploy.package import run_export

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = write_dataset(tmp_path_factory.mktemp("bench"))
        model = _model()
        ckpts = root / "checkpoints"
        ckpts.mkdir()
        checkpoint.save_model(ckpts / "best_model.pt", model)
        config = model.config.model_dump(mode="json")
        for tower in ("user_tower", "item_tower"):
            state = getattr(model, tower).state_dict()
            checkpoint.save(ckpts / f"{tower}.pt", {"config": config, "tower": tower, "state_dict": state})
        export = ExportParams(
            opset=18,
            fp16=True,
            int8=True,
            serving_user="fp32",
            serving_item="fp32",
            hnsw_m=8,
            hnsw_ef_search=16,
        )
        arts = root / "artifacts"
        run_export(
            export,
            ServingParams(
                popularity_prior=0.5, prior_floor=1e-3, new_item_quantile=None, repurchase_boost=0.0
            ),
            ckpts / "best_model.pt",
            root / "dataset",
            root / "text",
            arts,
            root / "export_report.json",
            REPO / "contracts/dc003.yaml",
        )
        params = BenchParams(
            warmup=2,
            repetitions=5,
            batch_repetitions=2,
            encode_repetitions=2,
            threads=1,
            retrieval_items=2000,
        )
        result = run_bench(params, arts, ckpts, root / "dataset", root / "text", encoder=_stub_encoder)
    finally:
        torch.set_num_threads(threads)
    return {"result": result, "arts": arts, "ckpts": ckpts}


def _resolve(data: Any, key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def test_bench_holds_every_figure_the_gates_read(bench: dict[str, Any]) -> None:
    result = bench["result"]
    gates = yaml.safe_load((REPO / "gates/promotion.yaml").read_text())["gates"]
    keys = [g["observed"].split(":", 1)[1] for g in gates if g.get("observed", "").startswith("bench:")]
    assert len(keys) >= 15
    for gate in gates:
        if not gate.get("observed", "").startswith("bench:"):
            continue
        value = _resolve(result, gate["observed"].split(":", 1)[1])
        if gate.get("requires") == "cuda" and not result["device"]["cuda"]:
            assert value is None  # not applicable: never a made-up number
        else:
            assert isinstance(value, int | float) and not isinstance(value, bool), gate["name"]
            assert value > 0, gate["name"]
    assert isinstance(result["device"]["cuda"], bool)
    for name in (
        "single_user_embedding",
        "single_item_embedding_cached_text",
        "single_item_embedding_with_text_encoding",
        "batch_1k_users",
        "batch_1k_items",
        "top50_retrieval",
    ):
        assert set(result["latency_ms"][name]) >= {"p50", "p95", "p99"}, name


def test_bench_sizes_are_the_files_on_disk(bench: dict[str, Any]) -> None:
    sizes = bench["result"]["sizes_mb"]
    arts, ckpts = bench["arts"], bench["ckpts"]
    assert sizes["onnx_user_tower"] == (arts / layout.USER_TOWER).stat().st_size / 2**20
    assert sizes["pytorch_complete_model"] == (ckpts / "best_model.pt").stat().st_size / 2**20
    assert sizes["onnx_total"] == pytest.approx(sizes["onnx_user_tower"] + sizes["onnx_item_tower"])
    # 24 users + 30 items, 128 floats each
    assert sizes["embedding_storage"] == pytest.approx((24 + 30) * 128 * 4 / 2**20)
    assert set(bench["result"]["artifacts_mb"]) >= {layout.USER_TOWER, layout.INDEX, layout.MAPPINGS}


def test_bench_compares_with_pytorch_and_both_precisions(bench: dict[str, Any]) -> None:
    result = bench["result"]
    assert set(result["precision"]["by_precision"]) == {"fp32", "fp16", "int8"}
    assert result["precision"]["serving"] == "fp32"
    assert result["memory_mb"]["user_call_rows"] == serving.USER_CHUNK  # the largest call serving makes
    for name, value in result["onnx_speedup_vs_pytorch"].items():
        assert np.isfinite(value) and value > 0, name
    assert result["memory_mb"]["total"] >= result["memory_mb"]["user_tower_session"]


def test_latency_statistics_are_ordered_and_count_every_call() -> None:
    calls: list[int] = []
    stats = latency_ms(lambda i: calls.append(i) or sum(range(1000 * (i % 5))), warmup=3, repetitions=40)
    assert calls == list(range(43))  # warm-up calls first, each call gets its own number
    assert stats["n"] == 40
    assert 0 < stats["min"] <= stats["p50"] <= stats["p95"] <= stats["p99"]
    assert ratio({"p50": 4.0}, {"p50": 2.0}) == 2.0
