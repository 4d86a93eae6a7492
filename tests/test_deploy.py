"""Deployment on a tiny model: ONNX export (names, shapes, dynamic batch and history length), parity with
PyTorch in a process that imports only onnxruntime + numpy, a perturbed model failing parity, the serving
features, FAISS retrieval, and `dc003 recommend` for a known and an unknown customer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from dc003.deploy import layout, parity, retrieval, serving
from dc003.deploy.package import SERVING_SPLIT, history_before, run_export
from dc003.exported import load_mappings, open_npz, write_legacy
from dc003.model import checkpoint
from dc003.model.two_tower import TwoTowerModel
from dc003.params.deploy import ExportParams, ServingParams
from dc003.scoring import serving_score
from dc003.text.embed import load_item_text
from dc003.train.data import load_training_data
from dc003.train.validation import served_catalogue
from tests.conftest import REPO
from tests.test_train_fixtures import N_ITEMS, tiny_config, write_dataset

EXPORT = ExportParams(
    opset=18, fp16=True, int8=True, serving_user="fp32", serving_item="fp32", hnsw_m=8, hnsw_ef_search=16
)
SERVING = ServingParams(popularity_prior=0.5, prior_floor=1e-3, new_item_quantile=None, repurchase_boost=0.0)


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(seed: int = 0) -> TwoTowerModel:
    torch.manual_seed(seed)
    model = TwoTowerModel(tiny_config(user_linear_skip=True, item_linear_skip=True))
    # trained-looking batch-norm statistics, so eval mode is not the identity
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    for tower in (model.user_tower, model.item_tower):  # trained-looking skips (they start at zero)
        torch.nn.init.normal_(tower.skip.weight, std=0.05)
    return model.eval()


def export_tiny(root: Path, seed: int = 0) -> dict[str, Any]:
    """The tiny dataset under ``root`` and the export stage on a tiny model (``seed``): ``root/artifacts``."""
    write_dataset(root)
    model = _model(seed)
    ckpt = root / "checkpoints" / "best_model.pt"
    ckpt.parent.mkdir()
    checkpoint.save_model(ckpt, model)
    arts, report_path = root / "artifacts", root / "reports" / "export_report.json"
    report = run_export(
        EXPORT, SERVING, ckpt, root / "dataset", root / "text", arts, report_path,
        REPO / "contracts/dc003.yaml",
    )  # fmt: skip
    # the reference model reads the history tokens the export stored (the served catalogue as of its cutoff)
    data = load_training_data(root / "dataset", load_item_text(root / "text"), model.config)
    served_catalogue(model, data, SERVING_SPLIT, SERVING)
    return {"root": root, "model": model, "arts": arts, "report": report, "report_path": report_path}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return export_tiny(tmp_path_factory.mktemp("deploy"))


def _user_arrays(rng: np.random.Generator, b: int, length: int) -> dict[str, np.ndarray]:
    cfg = tiny_config().user_tower
    lengths = rng.integers(0, length + 1, b)
    lengths[0] = length
    hist = rng.integers(0, N_ITEMS, (b, length))
    feed = serving.user_inputs(
        rng.integers(0, 3, (b, len(cfg.categorical))),
        rng.uniform(0, 10, (b, len(cfg.numerical))).astype(np.float32),
        hist,
        lengths,
    )
    feed["numerical"][0, 0] = np.nan  # a missing age is imputed inside the graph
    return feed


def _item_arrays(rng: np.random.Generator, b: int) -> dict[str, np.ndarray]:
    cfg = tiny_config().item_tower
    return {
        "categorical": rng.integers(0, 3, (b, len(cfg.categorical))),
        "numerical": rng.uniform(0, 1, (b, len(cfg.numerical))).astype(np.float32),
        "text": rng.normal(size=(b, len(cfg.text), 384)).astype(np.float32),
    }


def _torch(model: TwoTowerModel, tower: str, feed: dict[str, np.ndarray]) -> np.ndarray:
    names = layout.USER_INPUTS if tower == "user" else layout.ITEM_INPUTS
    module = model.user_tower if tower == "user" else model.item_tower
    with torch.no_grad():
        return module(*(torch.from_numpy(np.asarray(feed[n])) for n in names)).numpy()


# ------------------------------------------------------------------ the report the gates read


def test_export_report_passes_parity_and_holds_every_gate_key(exported: dict[str, Any]) -> None:
    report = json.loads(exported["report_path"].read_text())
    assert report["onnx_conversion"]["ok"] is True
    assert report["parity"]["precision"] == "fp32" and report["parity"]["ok"] is True
    assert report["parity"]["min_cosine"] >= 0.999
    assert report["parity"]["recall_50_abs_diff"] <= 0.005
    assert set(report["parity"]["by_precision"]) == {"fp32", "fp16", "int8"}  # every file checked
    assert report["stability"]["identical_across_runs"] is True
    gates = yaml.safe_load((REPO / "gates/promotion.yaml").read_text())["gates"]
    keys = [g["observed"].split(":", 1)[1] for g in gates if g.get("observed", "").startswith("export:")]
    assert keys
    for key in keys:
        node: Any = report
        for part in key.split("."):
            node = node[part]
        assert isinstance(node, bool | int | float), key


def test_artifacts_are_the_contract_files_and_config_names_the_serving_pair(exported: dict[str, Any]) -> None:
    arts = exported["arts"]
    for name in (layout.USER_TOWER, layout.ITEM_TOWER, layout.MODEL_CONFIG, layout.MAPPINGS):
        assert (arts / name).is_file(), name
    config = json.loads((arts / layout.MODEL_CONFIG).read_text())
    assert config["serving"] == {
        "precision": "fp32",
        "user_precision": "fp32",
        "item_precision": "fp32",
        "user_tower": layout.USER_TOWER_FP32,
        "item_tower": layout.ITEM_TOWER_FP32,
        "popularity_prior": 0.5,
        "prior_floor": 1e-3,
        "prior_weight": pytest.approx(0.5 * tiny_config().temperature),
        "new_item_quantile": None,
        "repurchase_boost": 0.0,
        "tail_prior": None,
        "tail_weight": None,
        "head_k": 10,
        "temperature": tiny_config().temperature,
        "index_dim": 130,
    }
    assert config["model"] == exported["model"].config.model_dump(mode="json")
    mappings = load_mappings(arts / layout.MAPPINGS)
    assert mappings.format == 2 and mappings.ids_path == arts / layout.MAPPING_IDS
    assert mappings.articles.lookup(["0000000007", "0000000099", "7"]).tolist() == [7, -1, -1]
    assert mappings.categorical["product_group_name"]["Shoes"] == 2
    assert len(mappings.customers) == 24
    # the FP16 file is smaller than the FP32 one: its weights really are half precision
    assert (arts / layout.USER_TOWER).stat().st_size < 0.7 * (arts / layout.USER_TOWER_FP32).stat().st_size


# ------------------------------------------------------------------ graphs: names, shapes, dynamic axes


@pytest.mark.parametrize("name", [layout.USER_TOWER, layout.USER_TOWER_FP32])
def test_user_tower_names_and_dynamic_batch_and_length(exported: dict[str, Any], name: str) -> None:
    sess = serving.session(exported["arts"] / name)
    assert [i.name for i in sess.get_inputs()] == list(layout.USER_INPUTS)
    assert [i.type for i in sess.get_inputs()] == [
        "tensor(int64)",
        "tensor(float)",
        "tensor(int64)",
        "tensor(bool)",
    ]
    assert [o.name for o in sess.get_outputs()] == [layout.USER_OUTPUT]
    rng = np.random.default_rng(1)
    for b, length in ((1, 1), (7, 5), (7, 50)):
        feed = _user_arrays(rng, b, length)
        out = sess.run(None, feed)[0]
        assert out.shape == (b, 128) and out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-3)
        assert parity.row_cosine(out, _torch(exported["model"], "user", feed)).min() >= 0.999


def test_user_tower_attention_has_no_nan_scrub_and_a_fully_padded_row_is_an_empty_history(
    exported: dict[str, Any],
) -> None:
    import onnx

    # the mask is additive (the CLS key is never masked, so no softmax row is all -inf): the graph has no
    # IsNaN / Where pass over the attention weights, which a boolean mask would add in every layer
    graph = onnx.load(str(exported["arts"] / layout.USER_TOWER_FP32)).graph
    softmax_out = {o for n in graph.node if n.op_type == "Softmax" for o in n.output}
    assert softmax_out
    assert not [n.name for n in graph.node if n.op_type == "IsNaN" and set(n.input) & softmax_out]
    # a row whose 5 history slots are all padding attends to the CLS token alone: finite, and the same
    # embedding as the same customer with no history at all
    sess = serving.session(exported["arts"] / layout.USER_TOWER_FP32)
    feed = _user_arrays(np.random.default_rng(3), 2, 5)
    feed["history_padding"][1] = True
    empty = {**feed, "history": feed["history"][1:, :0], "history_padding": feed["history_padding"][1:, :0]}
    empty = {k: v[1:] if k in ("categorical", "numerical") else v for k, v in empty.items()}
    padded = sess.run(None, feed)[0][1]
    assert np.isfinite(padded).all()
    np.testing.assert_allclose(padded, sess.run(None, empty)[0][0], atol=1e-6)


@pytest.mark.parametrize("name", [layout.ITEM_TOWER, layout.ITEM_TOWER_FP32])
def test_item_tower_names_and_dynamic_batch(exported: dict[str, Any], name: str) -> None:
    sess = serving.session(exported["arts"] / name)
    assert [i.name for i in sess.get_inputs()] == list(layout.ITEM_INPUTS)
    assert sess.get_inputs()[2].shape[1:] == [2, 384]
    rng = np.random.default_rng(2)
    for b in (1, 7):
        feed = _item_arrays(rng, b)
        out = sess.run([layout.ITEM_OUTPUT], feed)[0]
        assert out.shape == (b, 128)
        assert parity.row_cosine(out, _torch(exported["model"], "item", feed)).min() >= 0.999


_CHILD = """
import sys, numpy as np, onnxruntime as ort
d = sys.argv[1]
for tower, model in (("user", sys.argv[2]), ("item", sys.argv[3])):
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feed = {i.name: np.load(f"{d}/{tower}_{i.name}.npy") for i in sess.get_inputs()}
    np.save(f"{d}/{tower}_out.npy", sess.run(None, feed)[0])
loaded = sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("torch", "dc003", "pandas"))
print(",".join(loaded))
"""


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_fresh_onnxruntime_numpy_process_matches_pytorch(
    exported: dict[str, Any], tmp_path: Path, precision: str
) -> None:
    rng = np.random.default_rng(3)
    feeds = {"user": _user_arrays(rng, 9, 12), "item": _item_arrays(rng, 9)}
    for tower, feed in feeds.items():
        for name, arr in feed.items():
            np.save(tmp_path / f"{tower}_{name}.npy", arr)
    user, item = layout.tower_files(precision, True)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(tmp_path),
            str(exported["arts"] / user),
            str(exported["arts"] / item),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"ORT_DISABLE_TELEMETRY": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == ""  # neither torch nor dc003 was imported by the child
    for tower, feed in feeds.items():
        got = np.load(tmp_path / f"{tower}_out.npy")
        assert parity.row_cosine(got, _torch(exported["model"], tower, feed)).min() >= 0.999


def test_a_perturbed_model_fails_parity(exported: dict[str, Any], tmp_path: Path) -> None:
    from dc003.deploy.export import export_item_tower, export_user_tower
    from dc003.deploy.package import onnx_embeddings
    from dc003.train.batches import ItemTable
    from dc003.train.validation import embed_items, embed_users, retrieval_set

    root, model = exported["root"], exported["model"]
    bad = _model()
    with torch.no_grad():
        weight = bad.user_tower.projection[0].weight
        weight.add_(0.5 * torch.randn_like(weight))
    export_user_tower(bad, tmp_path / "u.onnx", 18)
    export_item_tower(bad, tmp_path / "i.onnx", 18)
    data = load_training_data(root / "dataset", load_item_text(root / "text"), model.config)
    rset = retrieval_set(data, "test")
    cpu = torch.device("cpu")
    reference = (
        embed_users(model, data, "test", rset.query_rows, 50, cpu),
        embed_items(model, ItemTable.build(data, "test", cpu)),
    )
    feats = data.features["test"]
    catalogue = (feats.item_cat, feats.item_num, data.item_text)
    test_users = serving.UserTable.load(exported["arts"] / layout.USER_FEATURES).rows(rset.users)
    bounds = {"min_cosine": 0.999, "max_recall_diff": 0.005}
    arts = exported["arts"]
    good = onnx_embeddings(
        (arts / layout.USER_TOWER_FP32, arts / layout.ITEM_TOWER_FP32), test_users, catalogue
    )
    assert parity.compare(reference, good, rset.truth, **bounds).ok
    perturbed = onnx_embeddings((tmp_path / "u.onnx", tmp_path / "i.onnx"), test_users, catalogue)
    result = parity.compare(reference, perturbed, rset.truth, **bounds)
    assert not result.ok
    assert result.min_cosine_users < 0.999
    assert result.min_cosine_items >= 0.999999  # only the user tower was perturbed


# ------------------------------------------------------------------ serving features and cold start


def test_serving_history_is_the_history_evaluation_uses(exported: dict[str, Any]) -> None:
    from dc003.train.batches import history_window
    from dc003.train.validation import retrieval_set

    root = exported["root"]
    data = load_training_data(root / "dataset", load_item_text(root / "text"), tiny_config())
    rset = retrieval_set(data, "test")
    hist, length = history_before(data, data.cutoffs["test"], 50)
    items, padding = history_window(data, rset.query_rows, 50)
    assert np.array_equal(length[rset.users], (~padding).sum(axis=1))
    width = items.shape[1]
    assert np.array_equal(np.where(padding, 0, hist[rset.users][:, :width]), items)
    assert length.max() > 1  # the check compared real histories


def test_cold_start_is_the_empty_history_of_pytorch(exported: dict[str, Any]) -> None:
    users = serving.UserTable.load(exported["arts"] / layout.USER_FEATURES)
    cold = users.cold()
    sess = serving.session(exported["arts"] / layout.USER_TOWER_FP32)
    got = serving.embed_users(sess, cold.categorical, cold.numerical, cold.history, cold.history_length)
    n_cat, n_num = cold.categorical.shape[1], cold.numerical.shape[1]
    with torch.no_grad():
        ref = (
            exported["model"]
            .user_tower(
                torch.zeros(1, n_cat, dtype=torch.long),
                torch.full((1, n_num), float("nan")),
                torch.zeros(1, 0, dtype=torch.long),
                torch.zeros(1, 0, dtype=torch.bool),
            )
            .numpy()
        )
    assert parity.row_cosine(got, ref)[0] >= 0.99999


# ------------------------------------------------------------------ retrieval


def test_faiss_flat_equals_numpy_top_k() -> None:
    from dc003.scoring.ranking import top_k_scores

    rng = np.random.default_rng(4)
    items, users = rng.normal(size=(500, 16)), rng.normal(size=(20, 16))
    scores, ids = retrieval.search(retrieval.flat_index(items), users, 10)
    expected = top_k_scores(serving_score.normalised(users), serving_score.normalised(items), 10)
    assert np.array_equal(ids, expected)
    assert np.all(np.diff(scores, axis=1) <= 0)
    # inner product of normalised vectors is the cosine
    cos = parity.row_cosine(users, items[ids[:, 0]])
    np.testing.assert_allclose(scores[:, 0], cos, atol=1e-5)


def test_the_prior_coordinate_adds_weight_times_log_popularity() -> None:
    # two unit items and a query: cosines 0.6 and 0.8; popularity 0.9 and 0.001 (floor 0.001)
    items = np.array([[0.6, 0.8], [0.8, 0.6]])
    query = np.array([[1.0, 0.0]])
    prior = serving_score.popularity_prior(np.array([0.9, 0.001]), 1e-3)
    np.testing.assert_allclose(prior, np.log([0.901, 0.002]), rtol=1e-6)
    scores, ids = retrieval.search(retrieval.flat_index(items), query, 2)
    assert ids[0].tolist() == [1, 0]  # plain cosine: 0.8 > 0.6
    weight = serving_score.prior_weight(0.5, 0.08)  # 0.04
    scores, ids = retrieval.search(retrieval.flat_index(items, prior), query, 2, weight)
    # 0.6 + 0.04 log 0.901 = 0.5958 beats 0.8 + 0.04 log 0.002 = 0.5514
    assert ids[0].tolist() == [0, 1]
    np.testing.assert_allclose(scores[0], [0.6 + 0.04 * np.log(0.901), 0.8 + 0.04 * np.log(0.002)], atol=1e-6)
    assert serving_score.prior_weight(0.0, 0.08) is None
    # the last coordinate evens the item norms out and adds nothing to a score
    vecs = serving_score.index_vectors(items, prior)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), np.linalg.norm(vecs[1]), rtol=1e-6)
    assert serving_score.query_vectors(query, weight)[0, -1] == 0.0
    assert np.isfinite(serving_score.popularity_prior(np.array([np.nan, 0.0]), 1e-3)).all()
    # an index and its queries must agree on the prior coordinate
    with pytest.raises(ValueError, match="does not match the index"):
        retrieval.search(retrieval.flat_index(items, prior), query, 2)
    with pytest.raises(ValueError, match="does not match the index"):
        retrieval.search(retrieval.flat_index(items), query, 2, weight)
    with pytest.raises(ValueError, match="reads the item feature 'popularity_score'"):
        serving_score.serving_prior(np.zeros((2, 1)), ["price"], 0.08, 0.5, 1e-3)


def test_new_item_prior_gives_never_sold_items_a_sold_quantile() -> None:
    pop = np.array([0.0, 0.1, 0.2, 0.4, 0.0, 0.0])
    never = np.array([False, False, False, False, True, True])  # item 0 sold, just not in the window
    off = serving_score.popularity_prior(pop, 1e-3, never, None)
    on = serving_score.popularity_prior(pop, 1e-3, never, 0.5)
    np.testing.assert_allclose(off[4:], np.log(1e-3), rtol=1e-6)
    np.testing.assert_allclose(on[4:], np.log(0.2 + 1e-3), rtol=1e-6)  # median of 0.1, 0.2, 0.4
    np.testing.assert_allclose(on[:4], off[:4])  # sold items keep their measured popularity


def test_served_item_inputs_give_never_sold_items_the_prior_s_popularity() -> None:
    """The item tower reads a never-sold item's popularity_score as the new-item prior does; sold items and
    the other numerical inputs stay as measured, and without the knob nothing changes."""
    config = tiny_config()
    names = [n.name for n in config.item_tower.numerical]
    j = names.index(serving_score.POPULARITY)
    num = np.random.default_rng(0).uniform(0.0, 1.0, (6, len(names))).astype(np.float32)
    num[:, j] = [0.0, 0.1, 0.2, 0.4, 0.0, np.nan]
    never = np.array([False, False, False, False, True, True])
    on = serving_score.served_item_numerical(
        num, config, SERVING.model_copy(update={"new_item_quantile": 0.5}), never
    )
    np.testing.assert_allclose(on[4:, j], 0.2)  # the median of the sold items' 0.1, 0.2, 0.4
    prior = serving_score.popularity_prior(num[:, j], 1e-3, never, 0.5)
    np.testing.assert_allclose(serving_score.popularity_prior(on[:, j], 1e-3, never, 0.5), prior)
    np.testing.assert_array_equal(on[:4], num[:4])
    np.testing.assert_array_equal(np.delete(on, j, axis=1), np.delete(num, j, axis=1))
    off = serving_score.served_item_numerical(num, config, SERVING, never)
    np.testing.assert_array_equal(off, num)
    assert off is not num  # a copy: the dataset's arrays are never written to


def test_search_with_the_repurchase_bonus_is_the_exact_ranking() -> None:
    """FAISS's top k merged with the rescored history items is the full-catalogue ranking of
    cosine + prior + bonus that the evaluation uses."""
    from dc003.scoring.ranking import top_k_scores

    rng = np.random.default_rng(3)
    items, queries = rng.normal(size=(400, 16)), rng.normal(size=(25, 16))
    prior = serving_score.popularity_prior(rng.random(400) ** 3, 1e-3)
    weight = serving_score.prior_weight(0.5, 0.08)
    history = rng.integers(0, 400, size=(25, 12))
    history[:, 1] = history[:, 0]  # some items bought twice
    lengths = rng.integers(2, 13, size=25)
    lengths[0] = 0  # a cold user: no bonus at all
    bonus = serving_score.repurchase_bonus(history, lengths, 400, 2.0, 0.08)
    assert bonus is not None and serving_score.repurchase_bonus(history, lengths, 400, 0.0, 0.08) is None
    assert bonus[0].nnz == 0
    times = np.sum(history[1, : lengths[1]] == history[1, 0])
    assert bonus[1, history[1, 0]] == pytest.approx(2.0 * 0.08 * np.log1p(times))
    _, got = retrieval.search(retrieval.flat_index(items, prior), queries, 30, weight, bonus)
    want = top_k_scores(
        serving_score.query_vectors(queries, weight),
        serving_score.index_vectors(items, prior),
        30,
        bonus=bonus,
    )
    np.testing.assert_array_equal(got, want)
    _, plain = retrieval.search(retrieval.flat_index(items, prior), queries, 30, weight)
    assert (got != plain).any()  # the bonus lifted some past purchases into the lists


def test_blend_lists_keeps_the_head_and_fills_from_the_tail_by_hand() -> None:
    head = np.array([[1, 2, 3, 4, 5], [7, 8, -1, -1, -1]])
    tail = np.array([[3, 9, 1, 6, 2], [8, 9, 7, -1, -1]])
    hs, ts = np.arange(10, 0, -2, dtype=np.float32)[None].repeat(2, 0), -np.arange(5, dtype=np.float32)[None]
    items, scores = serving_score.blend_lists(head, tail, 2, hs, ts.repeat(2, 0))
    np.testing.assert_array_equal(items, [[1, 2, 3, 9, 6], [7, 8, 9, -1, -1]])
    assert scores is not None
    np.testing.assert_array_equal(scores[0], [10, 8, -0, -1, -3])  # each item with the score that placed it
    same, _ = serving_score.blend_lists(head, tail, 5)
    np.testing.assert_array_equal(same, head)  # head_k >= k: one ranking
    with pytest.raises(ValueError, match="must match the head"):
        serving_score.blend_lists(head, tail[:, :3], 2)


def test_search_with_a_tail_prior_is_the_evaluation_s_blended_list() -> None:
    """FAISS serves the list the evaluation scores: the first head_k by cosine + prior (+ bonus), the rest
    by cosine + tail prior (+ bonus), the head's items skipped; by hand from the full score matrices."""
    from dc003.scoring.ranking import top_k_from_scores

    rng = np.random.default_rng(5)
    items, queries = rng.normal(size=(300, 16)), rng.normal(size=(20, 16))
    pop = rng.random(300) ** 3
    prior = serving_score.popularity_prior(pop, 1e-3)
    history = rng.integers(0, 300, size=(20, 6))
    bonus = serving_score.repurchase_bonus(history, np.full(20, 6), 300, 1.0, 0.08)
    knobs = SERVING.model_copy(update={"tail_prior": 0.1, "head_k": 10})
    weight, tail = serving_score.prior_weight(0.5, 0.08), serving_score.tail_weight(knobs, 0.08)
    assert tail == pytest.approx(0.008)
    cosine = serving_score.normalised(queries) @ serving_score.normalised(items).T + bonus.toarray()
    head_rank = top_k_from_scores(cosine + 0.5 * 0.08 * np.log(pop + 1e-3), 40)
    tail_rank = top_k_from_scores(cosine + 0.1 * 0.08 * np.log(pop + 1e-3), 40)
    want = [
        np.concatenate([h[:10], [i for i in t if i not in h[:10]][:30]])
        for h, t in zip(head_rank, tail_rank, strict=True)
    ]
    _, got = retrieval.search(retrieval.flat_index(items, prior), queries, 40, weight, bonus, tail, 10)
    np.testing.assert_array_equal(got, want)
    evaluated = serving_score.served_top_k(
        serving_score.query_vectors(queries, weight), serving_score.index_vectors(items, prior), 40, knobs,
        0.08, bonus=bonus,
    )  # fmt: skip
    np.testing.assert_array_equal(evaluated, want)
    assert (got[:, 10:] != head_rank[:, 10:]).any()  # the tail prior changed the rest of some lists
    no_prior = SERVING.model_copy(update={"popularity_prior": 0.0, "tail_prior": 0.1})
    assert serving_score.tail_weight(no_prior, 0.08) is None  # no prior coordinate: nothing to change


def test_hnsw_with_the_prior_finds_what_the_exact_index_finds() -> None:
    # a prior spread like the default run's (log of 0.001 .. 1): without evened-out norms HNSW recall fell
    # to ~0.45 there
    rng = np.random.default_rng(6)
    items, users = rng.normal(size=(2000, 16)), rng.normal(size=(50, 16))
    prior = serving_score.popularity_prior(rng.random(2000) ** 3, 1e-3)
    weight = serving_score.prior_weight(0.5, 0.08)
    _, exact = retrieval.search(retrieval.flat_index(items, prior), users, 50, weight)
    _, approx = retrieval.search(retrieval.hnsw_index(items, 16, 64, prior=prior), users, 50, weight)
    assert retrieval.ann_recall(exact, approx) >= 0.9


def test_hnsw_recall_is_measured_against_exact() -> None:
    rng = np.random.default_rng(5)
    items, users = rng.normal(size=(2000, 16)), rng.normal(size=(50, 16))
    _, exact = retrieval.search(retrieval.flat_index(items), users, 50)
    _, approx = retrieval.search(retrieval.hnsw_index(items, 16, 64), users, 50)
    assert retrieval.ann_recall(exact, exact) == 1.0
    assert 0.8 <= retrieval.ann_recall(exact, approx) <= 1.0
    _, weak = retrieval.search(retrieval.hnsw_index(items, 2, 1), users, 50)
    assert retrieval.ann_recall(exact, weak) < retrieval.ann_recall(exact, approx)
    disjoint = np.where(exact >= 0, exact + 2000, -1)
    assert retrieval.ann_recall(exact, disjoint) == 0.0


# ------------------------------------------------------------------ dc003 recommend


def _recommend(arts: Path, *args: str) -> dict[str, Any]:
    from dc003.cli import app

    res = CliRunner().invoke(app, ["recommend", "--artifacts", str(arts), "--json", *args])
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def _test_popularity(root: Path) -> np.ndarray:
    """popularity_score of every item as of the test cutoff, from the dataset the export read."""
    from dc003.train.data import load_training_data

    data = load_training_data(root / "dataset", np.load(root / "text" / "item_text.npy"), tiny_config())
    names = [n.name for n in tiny_config().item_tower.numerical]
    return np.asarray(data.features["test"].item_num[:, names.index(serving_score.POPULARITY)])


def test_recommend_known_customer_ranks_by_cosine_plus_the_popularity_prior(exported: dict[str, Any]) -> None:
    arts = exported["arts"]
    customer = f"{5:064x}"
    out = _recommend(arts, "--customer", customer, "-k", "7")
    assert out["cold_start"] is False
    assert [r["rank"] for r in out["items"]] == list(range(1, 8))
    users = serving.UserTable.load(arts / layout.USER_FEATURES).rows(np.array([5]))
    sess = serving.session(arts / layout.USER_TOWER_FP32)
    emb = serving.embed_users(sess, users.categorical, users.numerical, users.history, users.history_length)
    config = json.loads((arts / layout.MODEL_CONFIG).read_text())["serving"]
    tau = tiny_config().temperature
    assert config["prior_weight"] == pytest.approx(0.5 * tau) and config["index_dim"] == 130
    # score = cosine + 0.5 x temperature x log(popularity_score + 0.001), popularity as of the test cutoff
    pop = _test_popularity(exported["root"])
    assert pop.max() > pop.min()  # the prior can change an order here
    cosine = (emb @ np.load(arts / layout.ITEM_EMBEDDINGS).T)[0]
    scores = cosine + 0.5 * tau * np.log(pop + 1e-3)
    expected = [f"{i:010d}" for i in np.argsort(-scores, kind="stable")[:7]]
    assert [r["article_id"] for r in out["items"]] == expected
    np.testing.assert_allclose([r["score"] for r in out["items"]], np.sort(scores)[::-1][:7], atol=1e-5)
    assert out["items"][0]["prod_name"].startswith("item ")


def test_export_without_a_prior_serves_the_plain_cosine(exported: dict[str, Any], tmp_path: Path) -> None:
    root = exported["root"]
    arts = tmp_path / "artifacts"
    run_export(
        EXPORT, SERVING.model_copy(update={"popularity_prior": 0.0}), root / "checkpoints" / "best_model.pt",
        root / "dataset", root / "text", arts, tmp_path / "report.json", REPO / "contracts/dc003.yaml",
    )  # fmt: skip
    config = json.loads((arts / layout.MODEL_CONFIG).read_text())["serving"]
    assert config["prior_weight"] is None and config["index_dim"] == 128
    out = _recommend(arts, "--customer", f"{5:064x}", "-k", "7")
    users = serving.UserTable.load(arts / layout.USER_FEATURES).rows(np.array([5]))
    sess = serving.session(arts / layout.USER_TOWER_FP32)
    emb = serving.embed_users(sess, users.categorical, users.numerical, users.history, users.history_length)
    scores = (emb @ np.load(arts / layout.ITEM_EMBEDDINGS).T)[0]
    assert [r["article_id"] for r in out["items"]] == [f"{i:010d}" for i in np.argsort(-scores)[:7]]


def test_recommend_serves_the_tail_prior_the_export_records(exported: dict[str, Any], tmp_path: Path) -> None:
    """With serving.tail_prior the export records the tail's query weight and head_k, and `dc003 recommend`
    lists the first head_k by cosine + prior, then the rest by cosine + tail prior (head items skipped)."""
    root = exported["root"]
    arts = tmp_path / "artifacts"
    knobs = SERVING.model_copy(update={"tail_prior": 0.0, "head_k": 3})
    run_export(
        EXPORT, knobs, root / "checkpoints" / "best_model.pt", root / "dataset", root / "text", arts,
        tmp_path / "report.json", REPO / "contracts/dc003.yaml",
    )  # fmt: skip
    config = json.loads((arts / layout.MODEL_CONFIG).read_text())["serving"]
    tau = tiny_config().temperature
    assert config["tail_prior"] == 0.0 and config["tail_weight"] == 0.0 and config["head_k"] == 3
    assert config["prior_weight"] == pytest.approx(0.5 * tau)
    out = _recommend(arts, "--customer", f"{5:064x}", "-k", "12")
    users = serving.UserTable.load(arts / layout.USER_FEATURES).rows(np.array([5]))
    sess = serving.session(arts / layout.USER_TOWER_FP32)
    emb = serving.embed_users(sess, users.categorical, users.numerical, users.history, users.history_length)
    cosine = (emb @ np.load(arts / layout.ITEM_EMBEDDINGS).T)[0]
    one_ranking = np.argsort(-(cosine + 0.5 * tau * np.log(_test_popularity(root) + 1e-3)), kind="stable")
    head = one_ranking[:3]
    tail = [i for i in np.argsort(-cosine, kind="stable") if i not in head][:9]
    assert tail != one_ranking[3:12].tolist()  # the tail prior changes this list
    assert [r["article_id"] for r in out["items"]] == [f"{i:010d}" for i in [*head, *tail]]
    np.testing.assert_allclose([r["score"] for r in out["items"]][3:], cosine[tail], atol=1e-5)


def test_recommend_unknown_customer_takes_the_cold_start_path(exported: dict[str, Any]) -> None:
    arts = exported["arts"]
    out = _recommend(arts, "--customer", "not-a-customer", "-k", "5")
    assert out["cold_start"] is True and len(out["items"]) == 5
    known = _recommend(arts, "--customer", f"{5:064x}", "-k", "5")
    assert [r["score"] for r in out["items"]] != [r["score"] for r in known["items"]]


def test_the_export_writes_the_ids_as_binary_tables_beside_a_small_json_header(
    exported: dict[str, Any],
) -> None:
    import pyarrow.parquet as pq

    arts = exported["arts"]
    header = json.loads((arts / layout.MAPPINGS).read_text())
    users = pq.read_table(exported["root"] / "dataset/users_test.parquet").to_pydict()
    assert users["customer_id"][5] not in (arts / layout.MAPPINGS).read_text()  # no id in the JSON
    assert header["format"] == 2 and header["ids_file"] == layout.MAPPING_IDS
    assert header["customers"]["encoding"] == header["articles"]["encoding"] == "hex"
    arrays = open_npz(arts / layout.MAPPING_IDS)
    assert arrays["customers_keys"].dtype == np.dtype("S32")  # a 64-hex id stored as its 32 bytes
    assert arrays["articles_keys"].dtype == np.dtype("S5")  # 10 decimal digits are hex digits too
    assert not arrays["customers_keys"].flags.writeable  # memory-mapped read-only, not read into memory
    customers = load_mappings(arts / layout.MAPPINGS).customers
    assert customers.lookup(users["customer_id"]).tolist() == users["user_idx"]
    assert customers.decode(np.arange(len(customers))) == sorted(users["customer_id"])


def test_recommend_reads_an_export_in_the_previous_json_format_the_same(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    import shutil

    arts = tmp_path / "artifacts"
    shutil.copytree(exported["arts"], arts)
    new = load_mappings(arts / layout.MAPPINGS)
    tables = {"articles": new.articles, "customers": new.customers}
    write_legacy(arts / layout.MAPPINGS, new.categorical, tables, "format 1")
    (arts / layout.MAPPING_IDS).unlink()
    old = json.loads((arts / layout.MAPPINGS).read_text())
    assert old["customers"][f"{5:064x}"] == 5 and "format" not in old
    for customer in (f"{5:064x}", "not-a-customer"):
        args = ("--customer", customer, "-k", "5")
        assert _recommend(arts, *args) == _recommend(exported["arts"], *args)


@pytest.mark.parametrize("damage", ["flipped byte", "other export"])
def test_recommend_with_damaged_id_tables_is_one_line_naming_the_file(
    exported: dict[str, Any], tmp_path: Path, damage: str
) -> None:
    import shutil

    from dc003.cli import app
    from dc003.exported import IdTable, write_mappings

    arts = tmp_path / "artifacts"
    shutil.copytree(exported["arts"], arts)
    target = arts / layout.MAPPING_IDS
    if damage == "flipped byte":  # same size, so only the CRC tells
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        rule = "unreadable export artifact, truncated or corrupted (BadZipFile: Bad CRC-32"
    else:  # the id tables of another export beside this header
        m = load_mappings(arts / layout.MAPPINGS)
        other = {"articles": m.articles, "customers": IdTable.build([f"{1:064x}"], [0])}
        write_mappings(tmp_path / "other.json", m.categorical, other, "another export")
        shutil.copyfile(tmp_path / "other.npz", target)
        rule = "customers_keys: CRC-32"
    res = CliRunner().invoke(app, ["recommend", "--customer", f"{5:064x}", "--artifacts", str(arts)])
    assert res.exit_code == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"error: {target}: {rule}"), line
    assert line.endswith("re-run the export stage")


def test_recommend_without_artifacts_is_one_clear_error(tmp_path: Path) -> None:
    from dc003.cli import app

    res = CliRunner().invoke(app, ["recommend", "--customer", "x", "--artifacts", str(tmp_path)])
    assert res.exit_code == 1
    assert res.stderr.strip().startswith("error: ") and "run the export stage" in res.stderr


def test_recommend_with_an_empty_customer_id_is_an_error_not_a_cold_start(tmp_path: Path) -> None:
    from dc003.cli import app

    for empty in ("", "  "):
        res = CliRunner().invoke(app, ["recommend", "--customer", empty, "--artifacts", str(tmp_path)])
        assert res.exit_code == 1
        assert res.stderr.strip().startswith("error: --customer: empty customer_id"), res.stderr


@pytest.mark.parametrize(
    "name",
    [
        layout.USER_TOWER_FP32,
        layout.USER_FEATURES,
        layout.INDEX,
        layout.MAPPINGS,
        layout.MAPPING_IDS,
        layout.ITEMS,
    ],
)
def test_recommend_with_a_truncated_artifact_is_one_line_naming_it(
    exported: dict[str, Any], tmp_path: Path, name: str
) -> None:
    import shutil

    from dc003.cli import app

    arts = tmp_path / "artifacts"
    shutil.copytree(exported["arts"], arts)
    serving_file = json.loads((arts / layout.MODEL_CONFIG).read_text())["serving"]["user_tower"]
    target = arts / (serving_file if name == layout.USER_TOWER_FP32 else name)
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    res = CliRunner().invoke(app, ["recommend", "--customer", f"{5:064x}", "--artifacts", str(arts)])
    assert res.exit_code == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"error: {target}: unreadable export artifact, truncated or corrupted (")
    assert line.endswith("; re-run the export stage")


def test_recommend_refuses_pickled_user_features(exported: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    from dc003.cli import app

    arts = tmp_path / "artifacts"
    shutil.copytree(exported["arts"], arts)
    np.savez(arts / layout.USER_FEATURES, categorical=np.array([{"hook": "x"}], dtype=object))
    res = CliRunner().invoke(app, ["recommend", "--customer", f"{5:064x}", "--artifacts", str(arts)])
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: {arts / layout.USER_FEATURES}: holds pickled Python objects, refused: it may be unsafe to "
        "load; re-run the export stage"
    )


def test_recommend_does_not_import_torch(exported: dict[str, Any]) -> None:
    code = (
        "import sys, json; from typer.testing import CliRunner; from dc003.cli import app; "
        f"r = CliRunner().invoke(app, ['recommend', '--customer', 'nobody', '-k', '3', '--json', "
        f"'--artifacts', {str(exported['arts'])!r}]); assert r.exit_code == 0, r.output; "
        "print(json.dumps(['torch' in sys.modules, len(json.loads(r.stdout)['items'])]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, 3]


def test_a_serving_precision_must_be_exported() -> None:
    from pydantic import ValidationError

    base = {"opset": 18, "hnsw_m": 8, "hnsw_ef_search": 16, "serving_item": "fp32"}
    with pytest.raises(ValidationError, match="serving_user fp16 needs fp16"):
        ExportParams(fp16=False, int8=True, serving_user="fp16", **base)
    with pytest.raises(ValidationError, match="serving_user int8 needs int8"):
        ExportParams(fp16=True, int8=False, serving_user="int8", **base)
    assert ExportParams(fp16=False, int8=True, serving_user="int8", **base).precisions() == ["fp32", "int8"]


def test_mixed_serving_precisions_are_parity_checked_as_a_pair(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    root = exported["root"]
    params = EXPORT.model_copy(update={"serving_user": "int8", "serving_item": "fp16"})
    arts = tmp_path / "artifacts"
    report = run_export(
        params,
        SERVING,
        root / "checkpoints" / "best_model.pt",
        root / "dataset",
        root / "text",
        arts,
        tmp_path / "report.json",
        REPO / "contracts/dc003.yaml",
    )
    config = json.loads((arts / layout.MODEL_CONFIG).read_text())
    assert (config["serving"]["user_tower"], config["serving"]["item_tower"]) == (
        layout.USER_TOWER_INT8,
        layout.ITEM_TOWER,
    )
    by = report["parity"]["by_precision"]
    # the pair's worst user row is the int8 tower's, its worst item row the fp16 tower's
    assert report["parity"]["min_cosine_users"] == pytest.approx(by["int8"]["min_cosine_users"])
    assert report["parity"]["min_cosine_items"] == pytest.approx(by["fp16"]["min_cosine_items"])
    assert np.array_equal(np.load(arts / layout.ITEM_EMBEDDINGS).shape, (N_ITEMS, 128))
